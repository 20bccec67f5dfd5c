/* SPDX-License-Identifier: MulanPSL-2.0 */
/* Bad input to every libmicrun codec function: NULL pointers, short buffers,
 * out-of-range fields, truncated vectors, random bytes, bit flips, random byte
 * streams, misused framers. Each must come back as an error status with a
 * readable micrun_last_error() (never a crash, never a panic status), and
 * whatever does decode must re-encode and decode to the same message.
 *
 * usage: codec_garbage <messages.txt> [rounds]   prints "<n> checks ok" */
#include <micrun_codec.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "vectors.h"

static int failures;
static long checks;

static void fail(const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", what);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (last error: \"%s\")\n", micrun_last_error());
    va_end(ap);
    if (++failures > 50) {
        fprintf(stderr, "too many failures\n");
        exit(1);
    }
}

/* xorshift64: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint64_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static size_t rng_below(size_t n) { return n ? (size_t)(rng_next() % n) : 0; }
static void rng_fill(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng_next();
}

/* The last error after a failed call: non-empty, printable, naming the function. */
static void check_message(const char *what) {
    const char *msg = micrun_last_error();
    if (msg == NULL) {
        fail(what, "micrun_last_error() is NULL");
        return;
    }
    size_t len = strlen(msg);
    if (len < 10 || strncmp(msg, "micrun_", 7) != 0) fail(what, "unhelpful message");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c == 0x7f) {
            fail(what, "control character in the message");
            break;
        }
    }
}

/* `st` must be exactly `want`, with a message. */
static void expect(const char *what, micrun_status st, micrun_status want) {
    checks++;
    if (st != want) {
        fail(what, "status %d (%s), expected %d (%s)", st, micrun_status_str(st), want,
             micrun_status_str(want));
        return;
    }
    if (st != MICRUN_OK) check_message(what);
}

/* `st` must be an error (any but a panic), with a message. */
static void expect_error(const char *what, micrun_status st) {
    checks++;
    if (st == MICRUN_OK || st == MICRUN_ERR_PANIC) {
        fail(what, "status %d (%s), expected an error", st, micrun_status_str(st));
        return;
    }
    if (strcmp(micrun_status_str(st), "unknown status") == 0) fail(what, "unknown status %d", st);
    check_message(what);
}

/* ---- NULL pointers and bad arguments, function by function ----------------------- */

static void null_pointers(void) {
    uint8_t buf[64] = {0}, storage[MICRUN_FRAMER_STORAGE];
    size_t n;
    uint16_t crc;
    micrun_host_msg hm = {.kind = MICRUN_HOST_PING, .nonce = 1};
    micrun_rtos_msg rm = {.kind = MICRUN_RTOS_READY};
    micrun_frame_header h = {0};
    micrun_bytes b;
    micrun_framer f;

    expect("host_encode msg", micrun_host_msg_encode(NULL, buf, 64, &n), MICRUN_ERR_NULL);
    expect("host_encode buf", micrun_host_msg_encode(&hm, NULL, 64, &n), MICRUN_ERR_NULL);
    expect("host_encode out_len", micrun_host_msg_encode(&hm, buf, 64, NULL), MICRUN_ERR_NULL);
    expect("host_decode payload", micrun_host_msg_decode(NULL, 2, &hm), MICRUN_ERR_NULL);
    expect("host_decode out", micrun_host_msg_decode(buf, 2, NULL), MICRUN_ERR_NULL);
    expect("rtos_encode msg", micrun_rtos_msg_encode(NULL, buf, 64, &n), MICRUN_ERR_NULL);
    expect("rtos_encode buf", micrun_rtos_msg_encode(&rm, NULL, 64, &n), MICRUN_ERR_NULL);
    expect("rtos_encode out_len", micrun_rtos_msg_encode(&rm, buf, 64, NULL), MICRUN_ERR_NULL);
    expect("rtos_decode payload", micrun_rtos_msg_decode(NULL, 2, &rm), MICRUN_ERR_NULL);
    expect("rtos_decode out", micrun_rtos_msg_decode(buf, 2, NULL), MICRUN_ERR_NULL);
    expect("frame_build hdr", micrun_frame_build(NULL, buf, 1, buf + 8, 32, &n), MICRUN_ERR_NULL);
    expect("frame_build payload", micrun_frame_build(&h, NULL, 1, buf, 32, &n), MICRUN_ERR_NULL);
    expect("frame_build buf", micrun_frame_build(&h, NULL, 0, NULL, 32, &n), MICRUN_ERR_NULL);
    expect("frame_build out_len", micrun_frame_build(&h, NULL, 0, buf, 32, NULL), MICRUN_ERR_NULL);
    expect("frame_parse frame", micrun_frame_parse(NULL, 5, &h, &b), MICRUN_ERR_NULL);
    expect("frame_parse hdr", micrun_frame_parse(buf, 5, NULL, &b), MICRUN_ERR_NULL);
    expect("frame_parse payload", micrun_frame_parse(buf, 5, &h, NULL), MICRUN_ERR_NULL);
    expect("wire_encode frame", micrun_wire_encode(NULL, 5, buf, 64, &n), MICRUN_ERR_NULL);
    expect("wire_encode buf", micrun_wire_encode(buf, 5, NULL, 64, &n), MICRUN_ERR_NULL);
    expect("wire_encode out_len", micrun_wire_encode(buf, 5, buf + 8, 32, NULL), MICRUN_ERR_NULL);
    expect("crc16 data", micrun_crc16(NULL, 1, &crc), MICRUN_ERR_NULL);
    expect("crc16 out", micrun_crc16(buf, 1, NULL), MICRUN_ERR_NULL);
    expect("framer_init framer", micrun_framer_init(NULL, storage, sizeof storage), MICRUN_ERR_NULL);
    expect("framer_init storage", micrun_framer_init(&f, NULL, sizeof storage), MICRUN_ERR_NULL);
    expect("framer_init ok", micrun_framer_init(&f, storage, sizeof storage), MICRUN_OK);
    expect("framer_feed framer", micrun_framer_feed(NULL, buf, 1, &n, &b), MICRUN_ERR_NULL);
    expect("framer_feed data", micrun_framer_feed(&f, NULL, 1, &n, &b), MICRUN_ERR_NULL);
    expect("framer_feed consumed", micrun_framer_feed(&f, buf, 1, NULL, &b), MICRUN_ERR_NULL);
    expect("framer_feed frame", micrun_framer_feed(&f, buf, 1, &n, NULL), MICRUN_ERR_NULL);
    expect("framer_reset", micrun_framer_reset(NULL), MICRUN_ERR_NULL);

    /* NULL with length 0 is an empty input, not an error. */
    expect("crc16 empty", micrun_crc16(NULL, 0, &crc), MICRUN_OK);
    expect("framer_feed empty", micrun_framer_feed(&f, NULL, 0, &n, &b), MICRUN_OK);
    expect("host_decode empty", micrun_host_msg_decode(NULL, 0, &hm), MICRUN_ERR_MALFORMED);
}

static void bad_arguments(void) {
    uint8_t buf[600], storage[MICRUN_FRAMER_STORAGE];
    size_t n = 12345;
    micrun_framer f;
    micrun_bytes b;

    micrun_host_msg hm = {.kind = 10};
    expect("host kind 10", micrun_host_msg_encode(&hm, buf, sizeof buf, &n), MICRUN_ERR_INVALID_ARG);
    if (n != 0) fail("host kind 10", "out_len %zu after an error", n);
    hm = (micrun_host_msg){.kind = MICRUN_HOST_CREDIT, .stream = 4};
    expect("host stream 4", micrun_host_msg_encode(&hm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    static const uint8_t no_nul[] = {'l', 's'};
    static const uint8_t too_long[MICRUN_MAX_ARGV + 1] = {0};
    hm = (micrun_host_msg){.kind = MICRUN_HOST_EXEC_START, .argv = {.ptr = no_nul, .len = 2}};
    expect("argv without NUL", micrun_host_msg_encode(&hm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    hm.argv = (micrun_bytes){.ptr = too_long, .len = sizeof too_long};
    expect("argv too long", micrun_host_msg_encode(&hm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    hm.argv = (micrun_bytes){.ptr = NULL, .len = 3};
    expect("argv NULL", micrun_host_msg_encode(&hm, buf, sizeof buf, &n), MICRUN_ERR_NULL);
    hm.argv = (micrun_bytes){.ptr = buf + 2, .len = 2};
    buf[3] = 0;
    expect("argv inside buf", micrun_host_msg_encode(&hm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    hm = (micrun_host_msg){.kind = MICRUN_HOST_CONSOLE_IN, .data = {.ptr = NULL, .len = 4}};
    expect("host data NULL", micrun_host_msg_encode(&hm, buf, sizeof buf, &n), MICRUN_ERR_NULL);
    hm = (micrun_host_msg){.kind = MICRUN_HOST_CONSOLE_IN, .data = {.ptr = buf + 4, .len = 4}};
    expect("host data inside buf", micrun_host_msg_encode(&hm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    hm = (micrun_host_msg){.kind = MICRUN_HOST_STOP, .grace_ms = 1};
    expect("host short", micrun_host_msg_encode(&hm, buf, 1, &n), MICRUN_ERR_BUFFER_TOO_SHORT);
    if (n != 2) fail("host short", "needs %zu, expected 2", n);

    static const uint8_t long_name[MICRUN_MAX_NAME + 1] = "abcdefghijklmnopqrstuvwxy";
    static const uint8_t not_utf8[] = {'o', 0xc3, 0x28};
    micrun_rtos_msg rm = {.kind = MICRUN_RTOS_HELLO_ACK};
    rm.hello_ack.os = (micrun_bytes){.ptr = long_name, .len = sizeof long_name};
    expect("name too long", micrun_rtos_msg_encode(&rm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    /* Text is UTF-8 by contract, checked by neither side (the agent sends a C
     * firmware's bytes as they are; the host shows them replaced): it encodes,
     * and decodes as the same bytes. */
    rm.hello_ack.os = (micrun_bytes){.ptr = not_utf8, .len = sizeof not_utf8};
    expect("name not UTF-8", micrun_rtos_msg_encode(&rm, buf, sizeof buf, &n), MICRUN_OK);
    micrun_rtos_msg back;
    expect("name not UTF-8, decoded", micrun_rtos_msg_decode(buf, n, &back), MICRUN_OK);
    if (back.hello_ack.os.len != sizeof not_utf8 ||
        memcmp(back.hello_ack.os.ptr, not_utf8, sizeof not_utf8) != 0)
        fail("name not UTF-8", "decoded as other bytes");
    rm = (micrun_rtos_msg){.kind = MICRUN_RTOS_LOG, .level = 5};
    expect("log level 5", micrun_rtos_msg_encode(&rm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    rm = (micrun_rtos_msg){.kind = MICRUN_RTOS_EXITED, .reason = 99};
    expect("exit reason 99", micrun_rtos_msg_encode(&rm, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    rm = (micrun_rtos_msg){.kind = 0xffffffffu};
    expect("rtos kind", micrun_rtos_msg_encode(&rm, buf, sizeof buf, &n), MICRUN_ERR_INVALID_ARG);

    micrun_frame_header h = {.flags = 0x80};
    expect("reserved flags", micrun_frame_build(&h, NULL, 0, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    h = (micrun_frame_header){.flags = 0, .seq = 3};
    expect("seq without SEQ", micrun_frame_build(&h, NULL, 0, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    h = (micrun_frame_header){.flags = MICRUN_FRAME_FLAG_SEQ, .seq = 3};
    expect("payload too big", micrun_frame_build(&h, buf, MICRUN_PAYLOAD_MAX + 1, buf, sizeof buf, &n),
           MICRUN_ERR_INVALID_ARG);
    expect("frame short buf", micrun_frame_build(&h, NULL, 0, buf, 4, &n),
           MICRUN_ERR_BUFFER_TOO_SHORT);
    if (n != MICRUN_FRAME_OVERHEAD) fail("frame short buf", "needs %zu", n);
    expect("wire short buf", micrun_wire_encode(buf, 300, buf + 300, 300, &n),
           MICRUN_ERR_BUFFER_TOO_SHORT);
    if (n != 303) fail("wire short buf", "needs %zu, expected 303", n);

    expect("framer small storage",
           micrun_framer_init(&f, storage, MICRUN_FRAMER_STORAGE_MIN - 1), MICRUN_ERR_INVALID_ARG);
    memset(&f, 0xab, sizeof f);
    expect("framer garbage", micrun_framer_feed(&f, buf, 1, &n, &b), MICRUN_ERR_INVALID_ARG);
    memset(&f, 0, sizeof f);
    expect("framer zeroed", micrun_framer_reset(&f), MICRUN_ERR_INVALID_ARG);
    expect("framer init", micrun_framer_init(&f, storage, sizeof storage), MICRUN_OK);
    expect("framer own storage", micrun_framer_feed(&f, storage + 1, 3, &n, &b),
           MICRUN_ERR_INVALID_ARG);
}

/* ---- truncated vectors --------------------------------------------------------- */

static void truncations(const struct vector *v, long nv) {
    uint8_t storage[MICRUN_FRAMER_STORAGE], wire[VEC_MAX_BYTES];
    micrun_framer f;
    micrun_frame_header h;
    micrun_bytes b;
    for (long i = 0; i < nv; i++) {
        const struct vector *x = &v[i];
        /* Postcard messages are prefix-free: no strict prefix is a message. */
        for (size_t len = 0; len < x->payload_len; len++) {
            micrun_host_msg hm;
            micrun_rtos_msg rm;
            micrun_status st = x->h2r ? micrun_host_msg_decode(x->payload, len, &hm)
                                      : micrun_rtos_msg_decode(x->payload, len, &rm);
            expect(x->name, st, MICRUN_ERR_MALFORMED);
        }
        /* A message with a byte appended has trailing bytes. */
        if (x->payload_len) {
            uint8_t longer[VEC_MAX_BYTES + 1];
            memcpy(longer, x->payload, x->payload_len);
            longer[x->payload_len] = 0;
            micrun_host_msg hm;
            micrun_rtos_msg rm;
            micrun_status st = x->h2r ? micrun_host_msg_decode(longer, x->payload_len + 1, &hm)
                                      : micrun_rtos_msg_decode(longer, x->payload_len + 1, &rm);
            expect(x->name, st, MICRUN_ERR_MALFORMED);
        }
        for (size_t len = 0; len < x->frame_len; len++) {
            micrun_status st = micrun_frame_parse(x->frame, len, &h, &b);
            expect(x->name, st, len < MICRUN_FRAME_OVERHEAD ? MICRUN_ERR_FRAME_SHORT : MICRUN_ERR_CRC);
        }
        /* The wire form cut short, then a delimiter: one discarded frame. */
        for (size_t len = 1; len + 1 < x->wire_len; len++) {
            memcpy(wire, x->wire, len);
            wire[len] = 0;
            micrun_framer_init(&f, storage, sizeof storage);
            size_t used;
            micrun_status st = micrun_framer_feed(&f, wire, len + 1, &used, &b);
            expect_error(x->name, st);
            if (used != len + 1) fail(x->name, "truncated wire: consumed %zu of %zu", used, len + 1);
        }
    }
}

/* ---- random input -------------------------------------------------------------- */

/* Anything that decodes must survive encode -> decode -> encode unchanged. */
static void roundtrip_host(const micrun_host_msg *m) {
    uint8_t a[1024], c[1024];
    size_t na, nc;
    micrun_host_msg back;
    if (micrun_host_msg_encode(m, a, sizeof a, &na) != MICRUN_OK ||
        micrun_host_msg_decode(a, na, &back) != MICRUN_OK ||
        micrun_host_msg_encode(&back, c, sizeof c, &nc) != MICRUN_OK || na != nc ||
        memcmp(a, c, na) != 0)
        fail("host roundtrip", "kind %" PRIu32, m->kind);
    checks++;
}

static void roundtrip_rtos(const micrun_rtos_msg *m) {
    uint8_t a[1024], c[1024];
    size_t na, nc;
    micrun_rtos_msg back;
    if (micrun_rtos_msg_encode(m, a, sizeof a, &na) != MICRUN_OK ||
        micrun_rtos_msg_decode(a, na, &back) != MICRUN_OK ||
        micrun_rtos_msg_encode(&back, c, sizeof c, &nc) != MICRUN_OK || na != nc ||
        memcmp(a, c, na) != 0)
        fail("rtos roundtrip", "kind %" PRIu32, m->kind);
    checks++;
}

/* Random payloads: mostly a valid kind byte then noise, so decoders get past the
 * first byte. */
static void random_payloads(long rounds) {
    uint8_t p[600];
    long ok = 0;
    for (long r = 0; r < rounds; r++) {
        size_t len = rng_below(rng_below(4) ? 40 : sizeof p);
        rng_fill(p, len);
        if (len && rng_below(4)) p[0] = (uint8_t)rng_below(11);
        micrun_host_msg hm;
        micrun_status st = micrun_host_msg_decode(p, len, &hm);
        if (st == MICRUN_OK) {
            ok++;
            roundtrip_host(&hm);
        } else {
            expect("random host payload", st, MICRUN_ERR_MALFORMED);
        }
        micrun_rtos_msg rm;
        st = micrun_rtos_msg_decode(p, len, &rm);
        if (st == MICRUN_OK) {
            ok++;
            roundtrip_rtos(&rm);
        } else {
            expect("random rtos payload", st, MICRUN_ERR_MALFORMED);
        }
        micrun_frame_header h;
        micrun_bytes b;
        st = micrun_frame_parse(p, len, &h, &b);
        if (st != MICRUN_OK)
            expect("random frame", st, len < MICRUN_FRAME_OVERHEAD ? MICRUN_ERR_FRAME_SHORT : MICRUN_ERR_CRC);
    }
    if (ok == 0) fail("random payloads", "nothing decoded: the generator is too weak");
}

/* Random messages from C: random kinds and fields, random data; encoding either
 * works (and round-trips) or is refused as an invalid argument or short buffer. */
static void random_messages(long rounds) {
    uint8_t data[600], buf[700];
    for (long r = 0; r < rounds; r++) {
        rng_fill(data, sizeof data);
        micrun_host_msg hm;
        micrun_rtos_msg rm;
        rng_fill((uint8_t *)&hm, sizeof hm);
        rng_fill((uint8_t *)&rm, sizeof rm);
        hm.kind = (uint32_t)rng_below(10);
        rm.kind = (uint32_t)rng_below(10);
        hm.stream = rm.stream = (uint32_t)rng_below(4);
        rm.reason = (uint32_t)rng_below(5);
        rm.level = (uint32_t)rng_below(6);
        hm.data = (micrun_bytes){.ptr = data, .len = rng_below(sizeof data)};
        rm.data = (micrun_bytes){.ptr = data, .len = rng_below(sizeof data)};
        rm.text = (micrun_bytes){.ptr = data, .len = rng_below(MICRUN_MAX_LOG + 2)};
        rm.hello_ack.agent_version = (micrun_bytes){.ptr = data, .len = rng_below(3)};
        rm.hello_ack.os = (micrun_bytes){.ptr = data + 3, .len = rng_below(3)};
        rm.hello_ack.board = (micrun_bytes){.ptr = data + 6, .len = rng_below(MICRUN_MAX_NAME + 2)};
        size_t cap = rng_below(sizeof buf), n;
        micrun_status st = micrun_host_msg_encode(&hm, buf, cap, &n);
        if (st == MICRUN_OK) {
            roundtrip_host(&hm);
        } else if (st == MICRUN_ERR_BUFFER_TOO_SHORT) {
            checks++;
            if (n <= cap) fail("host encode", "short buffer of %zu, needs %zu", cap, n);
        } else {
            expect("random host msg", st, MICRUN_ERR_INVALID_ARG);
        }
        st = micrun_rtos_msg_encode(&rm, buf, cap, &n);
        if (st == MICRUN_OK) {
            roundtrip_rtos(&rm);
        } else if (st == MICRUN_ERR_BUFFER_TOO_SHORT) {
            checks++;
            if (n <= cap) fail("rtos encode", "short buffer of %zu, needs %zu", cap, n);
        } else {
            expect("random rtos msg", st, MICRUN_ERR_INVALID_ARG);
        }
    }
}

/* Random byte streams into a framer, in random chunks: only frames with a good CRC
 * come out, every call consumes something, and the counters add up. */
static void random_streams(long rounds) {
    uint8_t stream[2048], storage[MICRUN_FRAMER_STORAGE];
    micrun_framer f;
    for (long r = 0; r < rounds; r++) {
        size_t len = rng_below(sizeof stream);
        rng_fill(stream, len);
        /* Some zeros, so that there are frames to reject. */
        for (size_t i = 0; i < len; i++)
            if (rng_below(16) == 0) stream[i] = 0;
        size_t cap = MICRUN_FRAMER_STORAGE_MIN + rng_below(sizeof storage - MICRUN_FRAMER_STORAGE_MIN + 1);
        micrun_framer_init(&f, storage, cap);
        uint64_t outcomes = 0;
        for (size_t pos = 0; pos < len;) {
            size_t chunk = 1 + rng_below(len - pos), used = 0;
            micrun_bytes fr;
            micrun_status st = micrun_framer_feed(&f, stream + pos, chunk, &used, &fr);
            if (used == 0 || used > chunk) {
                fail("random stream", "consumed %zu of %zu", used, chunk);
                break;
            }
            pos += used;
            if (st == MICRUN_OK && fr.len) {
                micrun_frame_header h;
                micrun_bytes p;
                expect("framed random frame", micrun_frame_parse(fr.ptr, fr.len, &h, &p), MICRUN_OK);
                outcomes++;
            } else if (st != MICRUN_OK) {
                expect_error("random stream", st);
                outcomes++;
            }
        }
        micrun_framer_counters c = f.counters;
        if (c.frames + c.cobs_errors + c.short_frames + c.crc_errors + c.oversized != outcomes)
            fail("random stream", "counters do not add up to %" PRIu64 " outcomes", outcomes);
    }
}

/* One flipped bit in a valid wire vector: the frame is rejected, and the framer is
 * in sync for the next, intact copy. */
static void bit_flips(const struct vector *v, long nv, long rounds) {
    uint8_t storage[MICRUN_FRAMER_STORAGE], wire[2 * VEC_MAX_BYTES + 1];
    micrun_framer f;
    for (long r = 0; r < rounds; r++) {
        const struct vector *x = &v[rng_below((size_t)nv)];
        memcpy(wire, x->wire, x->wire_len);
        wire[rng_below(x->wire_len - 1)] ^= (uint8_t)(1u << rng_below(8));
        wire[x->wire_len] = 0;
        memcpy(wire + x->wire_len + 1, x->wire, x->wire_len);
        size_t total = 2 * x->wire_len + 1;
        micrun_framer_init(&f, storage, sizeof storage);
        int good = 0, bad = 0;
        for (size_t pos = 0; pos < total;) {
            size_t used;
            micrun_bytes fr;
            micrun_status st = micrun_framer_feed(&f, wire + pos, total - pos, &used, &fr);
            pos += used;
            if (st != MICRUN_OK) {
                expect_error(x->name, st);
                bad++;
            } else if (fr.len) {
                if (fr.len != x->frame_len || memcmp(fr.ptr, x->frame, fr.len) != 0)
                    fail(x->name, "a damaged frame got through");
                good++;
            }
        }
        checks++;
        if (good != 1 || bad < 1) fail(x->name, "bit flip: %d good, %d bad frames", good, bad);
    }
}

/* ---- the last-error contract --------------------------------------------------- */

static int other_thread(void *arg) {
    (void)arg;
    micrun_framer f;
    memset(&f, 0, sizeof f);
    micrun_framer_reset(&f);
    return strstr(micrun_last_error(), "micrun_framer_reset") != NULL;
}

static void last_error_rules(void) {
    uint8_t b = 0x63;
    micrun_host_msg m;
    micrun_host_msg_decode(&b, 1, &m);
    const char *first = micrun_last_error();
    if (strstr(first, "unknown HostMsg kind 99") == NULL) fail("last error", "says \"%s\"", first);
    if (micrun_last_error() != first || strstr(micrun_last_error(), "99") == NULL)
        fail("last error", "changed by reading it");
    thrd_t t;
    int res = 0;
    if (thrd_create(&t, other_thread, NULL) != thrd_success || thrd_join(t, &res) != thrd_success ||
        !res)
        fail("last error", "not set in another thread");
    if (strstr(micrun_last_error(), "kind 99") == NULL)
        fail("last error", "another thread's error replaced this one's");
    b = MICRUN_HOST_STATS_REQUEST;
    expect("decode", micrun_host_msg_decode(&b, 1, &m), MICRUN_OK);
    if (micrun_last_error()[0] != '\0') fail("last error", "not cleared by a success");
    for (int s = -20; s <= 5; s++) {
        const char *d = micrun_status_str(s);
        if (d == NULL || d[0] == '\0') fail("micrun_status_str", "nothing for %d", s);
    }
    checks += 4;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s tests/vectors/messages.txt [rounds]\n", argv[0]);
        return 2;
    }
    long rounds = argc == 3 ? strtol(argv[2], NULL, 10) : 20000;
    struct vector *v = NULL;
    long nv = load_vectors(argv[1], &v);
    if (nv <= 0 || rounds <= 0) return 2;

    null_pointers();
    bad_arguments();
    truncations(v, nv);
    random_payloads(rounds);
    random_messages(rounds / 4);
    random_streams(rounds / 20);
    bit_flips(v, nv, rounds / 10);
    last_error_rules();
    free(v);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("%ld checks ok\n", checks);
    return 0;
}
