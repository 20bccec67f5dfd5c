/* SPDX-License-Identifier: MulanPSL-2.0 */
/* Loader for tests/vectors/messages.txt (format at the top of that file), shared by
 * the C codec tests. Header-only: each test program includes it once. */
#ifndef MICRUN_TEST_VECTORS_H
#define MICRUN_TEST_VECTORS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VEC_MAX_BYTES 512
#define VEC_MAX_LINE 4096

struct vector {
    char name[64];
    int h2r; /* 1: host -> RTOS (HostMsg), 0: RTOS -> host (RtosMsg) */
    uint8_t flags, seq, ack;
    uint8_t payload[VEC_MAX_BYTES];
    size_t payload_len;
    uint8_t frame[VEC_MAX_BYTES];
    size_t frame_len;
    uint8_t wire[VEC_MAX_BYTES];
    size_t wire_len;
};

static int hex_nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Lowercase hex, or "-" for no bytes. Returns 0 on success. */
static int parse_hex(const char *s, uint8_t *out, size_t *len) {
    size_t n = strlen(s);
    *len = 0;
    if (strcmp(s, "-") == 0) return 0;
    if (n % 2 != 0 || n / 2 > VEC_MAX_BYTES) return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_nibble(s[i]), lo = hex_nibble(s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return 0;
}

static int parse_u8(const char *s, int base, uint8_t *out) {
    char *end;
    unsigned long v = strtoul(s, &end, base);
    if (*s == '\0' || *end != '\0' || v > 255) return -1;
    *out = (uint8_t)v;
    return 0;
}

/* Reads every vector of `path` into a malloc'd array (free it); returns the count,
 * or -1 after printing what is wrong. */
static long load_vectors(const char *path, struct vector **out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    static char line[VEC_MAX_LINE + 2];
    size_t cap = 0, n = 0;
    struct vector *v = NULL;
    long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            struct vector *grown = realloc(v, cap * sizeof *v);
            if (!grown) {
                free(v);
                fclose(f);
                return -1;
            }
            v = grown;
        }
        struct vector *cur = &v[n];
        memset(cur, 0, sizeof *cur);
        char *field[8];
        int nf = 0;
        for (char *tok = strtok(line, " "); tok; tok = strtok(NULL, " ")) {
            if (nf == 8) {
                nf = 9;
                break;
            }
            field[nf++] = tok;
        }
        int bad = nf != 8 || strlen(field[0]) >= sizeof cur->name;
        if (!bad) {
            strcpy(cur->name, field[0]);
            cur->h2r = strcmp(field[1], "h2r") == 0;
            bad = (!cur->h2r && strcmp(field[1], "r2h") != 0) ||
                  parse_u8(field[2], 16, &cur->flags) || parse_u8(field[3], 10, &cur->seq) ||
                  parse_u8(field[4], 10, &cur->ack) ||
                  parse_hex(field[5], cur->payload, &cur->payload_len) ||
                  parse_hex(field[6], cur->frame, &cur->frame_len) ||
                  parse_hex(field[7], cur->wire, &cur->wire_len);
        }
        if (bad) {
            fprintf(stderr, "%s:%ld: not a vector line\n", path, lineno);
            free(v);
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    *out = v;
    return (long)n;
}

#endif
