/* Integer-bound: quicksort (median of three, insertion sort below 16
 * elements) of 2048 LCG words, n times with a new seed each pass; the
 * result mixes the sorted arrays and fails loudly if one is out of order. */
#include "rt.h"

const char bench_name[] = "sort";

#define N 2048
static u32 a[N];

static void insertion(u32 *v, int lo, int hi)
{
    for (int i = lo + 1; i <= hi; i++) {
        u32 x = v[i];
        int j = i - 1;
        while (j >= lo && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

static void quicksort(u32 *v, int lo, int hi)
{
    while (hi - lo >= 16) {
        int mid = lo + (hi - lo) / 2;
        u32 x = v[lo], y = v[mid], z = v[hi];
        u32 pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                u32 t = v[i]; v[i] = v[j]; v[j] = t;
                i++; j--;
            }
        }
        if (j - lo < hi - i) {          /* recurse into the smaller side */
            quicksort(v, lo, j);
            lo = i;
        } else {
            quicksort(v, i, hi);
            hi = j;
        }
    }
    insertion(v, lo, hi);
}

unsigned bench(unsigned n)
{
    u32 h = 0;
    for (u32 pass = 0; pass < n; pass++) {
        u32 s = pass + 1;
        for (int i = 0; i < N; i++)
            a[i] = lcg(&s);
        quicksort(a, 0, N - 1);
        for (int i = 0; i < N; i++) {
            if (i && a[i - 1] > a[i])
                return 0xBAD0BAD0u;
            h = (h ^ a[i]) * 16777619u;
        }
    }
    return h;
}
