/* Where palettes restart, and what each section's palette and coding mode are. Both decisions change
 * the bytes, so they follow the reference encoder's heuristics exactly (see qc_ethosu.h). */
#include <stdlib.h>
#include <string.h>

#include "ethosu/mlw.h"

/* Zero runs are used when 0 is the commonest value by more than this factor over the runner-up. */
#define ZERO_RUN_FACTOR 4

/* Index bits a palette of `size` entries needs, saturating at 8 as the reference's estimate does. */
static int index_bits(int size)
{
    for (int b = 7; b >= 0; b--)
        if (size > (1 << b)) return b + 1;
    return 0;
}

static int is_power_of_two(int x)
{
    return ((x - 1) & x) == 0;
}

/* The section search's state while scanning the weights once. */
typedef struct section_scan {
    const int16_t *w;
    ptrdiff_t last_restart;   /* start of the current section */
    int have_palette;         /* the current section has been judged worth a palette */
    int palette_size;         /* distinct values seen in it (with zero) */
    ptrdiff_t zeros;          /* zeros in it so far */
    ptrdiff_t last_seen[MLW_NPALVAL];  /* last position of each value + 256, -1 when unseen */
    uint32_t stamp[MLW_NPALVAL];       /* marks values counted by the current window */
    uint32_t token;
    int32_t *nonzero_at;        /* positions of the non-zero values, in order (n < 2^31) */
    ptrdiff_t nonzero_upto;     /* how many of them lie at or before the current position */
    size_t *starts;
    size_t count, cap;
    int failed;
} section_scan;

static void add_start(section_scan *s, ptrdiff_t pos)
{
    if (s->count == s->cap) {
        size_t cap = s->cap * 2;
        size_t *grown = realloc(s->starts, cap * sizeof *grown);
        if (grown == NULL) {
            s->failed = 1;
            return;
        }
        s->starts = grown;
        s->cap = cap;
    }
    s->starts[s->count++] = (size_t)pos;
}

/* A value outside the current palette grows it; growing a long-used palette by an index bit (or past
 * 32 entries) starts a new section at i instead. */
static void grow_palette(section_scan *s, ptrdiff_t i, int exclude_zero)
{
    s->palette_size++;
    if (!is_power_of_two(s->palette_size - 1 - exclude_zero)) return;
    if (i - s->last_restart - s->zeros > 512 || s->palette_size - exclude_zero > MLW_PALETTE_MAX) {
        add_start(s, i);
        s->last_restart = i;
        s->have_palette = 0;
        s->zeros = 0;
    }
}

/* Whether a palette of `size` values over a window of n non-zero values is worth starting: its estimated
 * saving in bits is positive (and, without a palette yet, it holds at most 32 values besides zero). */
static int worth_it(const section_scan *s, int size, int n, int exclude_zero)
{
    int saving;
    if (s->have_palette) {
        saving = n * (index_bits(s->palette_size - exclude_zero) * 15 - index_bits(size - exclude_zero) * 15) / 16
                 - size * 8 - 20;
    } else {
        if (size - exclude_zero > MLW_PALETTE_MAX) return 0;
        saving = n * (90 - index_bits(size - exclude_zero) * 15) / 16 - size * 8 - 20;
    }
    return saving > 0;
}

/* The smallest palette size that is not worth it. worth_it never turns true again as the size grows
 * (index bits and the 8 bits per entry only grow), so a binary search finds it. */
static int size_limit(const section_scan *s, int n, int exclude_zero)
{
    int lo = 0, hi = MLW_NPALVAL + 1;  /* worth_it(hi) is false: at most 512 values exist */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (worth_it(s, mid, n, exclude_zero)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Judges a palette over the last n non-zero values ending at i; adopts it when the estimated saving in
 * bits is positive. */
static void try_window(section_scan *s, ptrdiff_t i, int n, int exclude_zero)
{
    const int16_t *w = s->w;
    /* The window starts at the (n + 2)-th non-zero value counted back from i, or at the section start if
     * there are fewer after it: read from the positions of the non-zero values instead of scanning. */
    ptrdiff_t back = s->nonzero_upto - (n + 2);
    ptrdiff_t restart = s->last_restart;
    if (back >= 0 && s->nonzero_at[back] > s->last_restart) restart = s->nonzero_at[back];
    /* Distinct values in [restart, i] (those last seen at or after restart), counted over the window
     * rather than over all 512 values, and only until the count reaches a size not worth a palette:
     * windows of settled data stop after a few values. */
    int limit = size_limit(s, n, exclude_zero), new_size = 0;
    uint32_t token = ++s->token;
    for (ptrdiff_t k = restart; k <= i && new_size < limit; k++) {
        uint32_t *mark = &s->stamp[w[k] + 256];
        new_size += *mark != token;
        *mark = token;
    }
    if (new_size >= limit) return;
    s->palette_size = new_size;
    s->have_palette = 1;
    s->last_restart = restart;
    if (s->starts[s->count - 1] != (size_t)restart) add_start(s, restart);
    s->zeros = 0;
    for (ptrdiff_t k = restart; k <= i; k++) s->zeros += w[k] == 0;
}

size_t mlw_palette_sections(size_t **out, const int16_t *w, size_t n)
{
    section_scan *s = calloc(1, sizeof *s);
    if (s == NULL) return 0;
    s->w = w;
    s->cap = 16;
    s->starts = malloc(s->cap * sizeof *s->starts);
    if (s->starts == NULL) {
        free(s);
        return 0;
    }
    s->starts[s->count++] = 0;
    for (int v = 0; v < MLW_NPALVAL; v++) s->last_seen[v] = -1;
    s->nonzero_at = malloc((n + 1) * sizeof *s->nonzero_at);
    s->failed = s->nonzero_at == NULL;
    /* Branch-free: zeros are scattered unpredictably in quantized weights. The array has room for the
     * last store. */
    for (size_t i = 0, count = 0; i < n && !s->failed; i++) {
        s->nonzero_at[count] = (int32_t)i;
        count += w[i] != 0;
    }

    for (ptrdiff_t i = 0; i < (ptrdiff_t)n && !s->failed; i++) {
        int exclude_zero = s->zeros > (i - s->last_restart) / 4;
        if (s->have_palette && s->last_seen[w[i] + 256] < s->last_restart) grow_palette(s, i, exclude_zero);
        s->last_seen[w[i] + 256] = i;
        s->zeros += w[i] == 0;
        s->nonzero_upto += w[i] != 0;
        /* Windows of 32..512 non-zero values (twice that once a palette is in use); the section state
         * may change between window sizes, and each size sees the change. All windows are powers of two
         * from 32 up, so none can fire unless the count of non-zero values is a multiple of 32. */
        if (((i - s->last_restart - s->zeros) & 31) != 0) continue;
        for (int k = 0; k < 5; k++) {
            ptrdiff_t window = (ptrdiff_t)(32 << k) * (s->have_palette ? 2 : 1);
            ptrdiff_t nonzero = i - s->last_restart - s->zeros;
            if (nonzero > 0 && (nonzero & (window - 1)) == 0) try_window(s, i, (int)window, exclude_zero);
        }
    }
    size_t sections = s->failed ? 0 : s->count;
    if (sections) *out = s->starts;
    else free(s->starts);
    free(s->nonzero_at);
    free(s);
    return sections;
}

/* Decides zero runs from the two commonest values (ties: the lower value first). */
static int want_zero_runs(const int32_t freq[511])
{
    int32_t best = 0, second = 0;
    int best_value = 0;
    for (int v = -255; v <= 255; v++) {
        int32_t f = freq[v + 255];
        if (f > best) {
            second = best;
            best = f;
            best_value = v;
        } else if (f > second) {
            second = f;
        }
    }
    return best_value == 0 && (int64_t)best > (int64_t)ZERO_RUN_FACTOR * second;
}

static int by_count_then_palval_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

/* Fills p->index_of: direct indices for every value, then palette indices over them. Weight 0 takes
 * palval 1 ("-0") in direct mode, as in the reference, since that palval is visited after palval 0. */
static void make_index_map(mlw_palette *p)
{
    for (int palval = 0; palval < MLW_NPALVAL; palval++) {
        int mag = palval >> 1;
        if (mag > 255) continue;
        int w = (palval & 1) ? -mag : mag;
        p->index_of[w + 255] = (int16_t)(palval + p->size - p->direct_offset);
    }
    for (int i = 0; i < p->size; i++) {
        int palval = p->lut[i], mag = palval >> 1;
        p->index_of[((palval & 1) ? -mag : mag) + 255] = (int16_t)i;
    }
}

void mlw_palette_make(mlw_palette *p, const int16_t *w, size_t n)
{
    int32_t freq[511] = {0};
    for (size_t i = 0; i < n; i++) freq[w[i] + 255]++;
    mlw_palette_from(p, freq, want_zero_runs(freq), 0);
}

void mlw_palette_from(mlw_palette *p, const int32_t freq[511], int zero_runs, int at_least_half)
{
    memset(p, 0, sizeof *p);
    p->zero_runs = zero_runs;

    /* (count << 16) | palval sorts by count, then palval, both descending. */
    uint64_t key[MLW_NPALVAL] = {0};
    int64_t total = 0;
    int max_palval = 0;
    for (int v = -255; v <= 255; v++) {
        if (v == 0 && p->zero_runs) continue;
        int palval = mlw_palval(v);
        key[palval] = ((uint64_t)freq[v + 255] << 16) | (uint64_t)palval;
        total += freq[v + 255];
        if (freq[v + 255] > 0 && palval > max_palval) max_palval = palval;
    }
    int dirofs = 0;
    while (dirofs < 31 && (key[dirofs] >> 16) == 0) dirofs++;
    p->direct_offset = dirofs;
    /* Only the values that occur need sorting: the palette takes none of the others, and in descending
     * order they would all follow them. */
    uint64_t *end = key;
    for (int palval = 0; palval < MLW_NPALVAL; palval++)
        if (key[palval] >> 16) *end++ = key[palval];
    size_t used = (size_t)(end - key);
    qsort(key, used, sizeof key[0], by_count_then_palval_desc);
    memset(key + used, 0, (MLW_NPALVAL - used) * sizeof key[0]);

    p->only_zeros = (key[0] >> 16) == 0;
    if (p->only_zeros) p->direct_offset = 0;
    p->only_palette = (key[0] >> 16) > 0 && (key[MLW_PALETTE_MAX] >> 16) == 0;

    /* Direct indices must stay below 512, which bounds the palette when some values fall outside it. */
    int max_size = MLW_PALETTE_MAX;
    if (!p->only_palette) {
        max_size = 511 - max_palval < MLW_PALETTE_MAX ? 511 - max_palval : MLW_PALETTE_MAX;
        if (max_size == 1) max_size = 0;
    }
    int size = 0, palette_max = 0;
    int64_t covered = 0;
    for (; size < max_size && (key[size] >> 16) > 0; size++) {
        p->lut[size] = (int16_t)(key[size] & 0xffff);
        if (p->lut[size] > palette_max) palette_max = p->lut[size];
        covered += (int64_t)(key[size] >> 16);
    }
    if (size == 1) size = 2;  /* no palette of one entry: the second is palval 0 */

    /* A palette pays only when it covers more than half of the weights (Regor: at least half). */
    int widest = max_palval;
    if (at_least_half ? covered >= total / 2 : covered > total / 2) {
        p->size = size;
        widest = palette_max;
    }
    p->bits = 2;
    while ((1 << p->bits) <= widest) p->bits++;
    make_index_map(p);
}

int mlw_palette_raw_width(const mlw_palette *p)
{
    if (p->only_palette) {
        int bits = 0;
        while ((1 << bits) < p->size) bits++;
        return bits;
    }
    return p->size == 0 ? p->bits : MLW_NO_RAW;
}
