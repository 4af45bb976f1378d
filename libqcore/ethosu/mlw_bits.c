/* The LSB-first bit writer of the weight stream (mlw_put, inline in mlw.h, gathers bits in a 64-bit word;
 * they leave it here four bytes at a time, which is what makes encoding faster than writing bit by bit). */
#include <stdlib.h>
#include <string.h>

#include "ethosu/mlw.h"

int mlw_writer_init(mlw_writer *w, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->cap = cap < 64 ? 64 : cap;
    w->buf = malloc(w->cap);
    w->failed = w->buf == NULL;
    return w->failed ? -1 : 0;
}

static int reserve(mlw_writer *w, size_t extra)
{
    if (w->failed) return -1;
    if (w->bytes + extra <= w->cap) return 0;
    size_t cap = w->cap * 2;
    uint8_t *grown = realloc(w->buf, cap);
    if (grown == NULL) {
        w->failed = 1;
        return -1;
    }
    w->buf = grown;
    w->cap = cap;
    return 0;
}

void mlw_spill(mlw_writer *w)
{
    if (reserve(w, 4) == 0) {
        uint32_t word = (uint32_t)w->acc;
        for (int i = 0; i < 4; i++) w->buf[w->bytes + (size_t)i] = (uint8_t)(word >> (8 * i));
        w->bytes += 4;
    }
    w->acc >>= 32;
    w->nacc -= 32;
}

void mlw_flush(mlw_writer *w)
{
    while (w->nacc > 0) {
        if (reserve(w, 1) == 0) w->buf[w->bytes++] = (uint8_t)w->acc;
        w->acc >>= 8;
        w->nacc = w->nacc > 8 ? w->nacc - 8 : 0;
    }
    w->acc = 0;
}
