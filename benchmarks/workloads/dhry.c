/* Integer-bound: a Dhrystone-like mix written for visor86 (not Dhrystone's
 * code): records copied by assignment, linked through pointers, strings
 * copied and compared, an enumeration through a switch, small procedures
 * with pointer parameters, and one- and two-dimensional arrays. */
#include "rt.h"

const char bench_name[] = "dhry";

enum colour { RED, GREEN, BLUE, GREY, WHITE };

struct rec {
    struct rec *next;
    enum colour colour;
    int number;
    char text[32];
};

static struct rec r1, r2, r3;
static int grid[32][32];
static int line[64];
static char name1[32], name2[32];

static __attribute__((noipa)) void copy_str(char *d, const char *s)
{
    while ((*d++ = *s++))
        ;
}

static __attribute__((noipa)) int compare_str(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static __attribute__((noipa)) enum colour next_colour(enum colour c, int k)
{
    switch (c) {
    case RED:   return k & 1 ? GREEN : BLUE;
    case GREEN: return k & 2 ? BLUE : GREY;
    case BLUE:  return WHITE;
    case GREY:  return k > 3 ? RED : GREEN;
    default:    return RED;
    }
}

static __attribute__((noipa)) void update(struct rec *r, int *acc, int k)
{
    *r = *r->next;                      /* a whole-record copy */
    r->number += k;
    r->colour = next_colour(r->colour, k);
    *acc += r->number * 3 + (int)r->colour;
}

static __attribute__((noipa)) int arrays(int k)
{
    int i = k & 31;
    line[i] = k;
    line[i + 32] = line[i] + i;
    grid[i][i] = line[i + 32];
    grid[i][(i + 7) & 31] += 1;
    return grid[i][i] + grid[(i + 1) & 31][i];
}

unsigned bench(unsigned n)
{
    int acc = 0;
    r1.next = &r2;
    r2.next = &r3;
    r3.next = &r1;
    r1.colour = RED; r2.colour = GREEN; r3.colour = BLUE;
    copy_str(r1.text, "VISOR86 RECORD, THE FIRST ONE");
    copy_str(r2.text, "VISOR86 RECORD, THE SECOND ONE");
    copy_str(r3.text, "VISOR86 RECORD, THE THIRD ONE");
    for (unsigned k = 0; k < n; k++) {
        copy_str(name1, "SOME STRING OF THIRTY CHARS..");
        copy_str(name2, (k & 1) ? "SOME STRING OF THIRTY CHARS.." : "SOME STRING OF THIRTY CHARS,,");
        int same = compare_str(name1, name2) == 0;
        update(&r1, &acc, (int)(k & 7));
        r1.next = &r2;
        if (same)
            acc += arrays((int)k);
        else
            acc -= r1.colour == WHITE ? 1 : 2;
        acc ^= (int)(k * 7) / 3 + (int)(k % 5);
    }
    return (unsigned)acc + (unsigned)r1.number;
}
