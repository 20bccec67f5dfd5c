/* SPDX-License-Identifier: MulanPSL-2.0 */
/* The golden vectors through libmicrun's C API, byte-exact both ways.
 *
 * For every line of tests/vectors/messages.txt: the wire bytes go through the
 * stream framer (whole, and one byte at a time) and must give the frame; the frame
 * parses to the vector's header and payload; the payload decodes to the message
 * this file expects for that name (checked field by field via a description), and
 * re-encodes to the same payload; building the frame and COBS-encoding it give the
 * same frame and wire bytes. Finally all wire vectors, concatenated and fed in
 * small chunks, come out of one framer in order.
 *
 * usage: codec_vectors <messages.txt>   prints "libmicrun <version>" and "<n> vectors ok" */
#include <micrun_codec.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vectors.h"

static int failures;

static void fail(const struct vector *v, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", v ? v->name : "-");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (last error: \"%s\")\n", micrun_last_error());
    va_end(ap);
    failures++;
}

static int same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* ---- a canonical description of a decoded message ------------------------------ */

struct text {
    char buf[1024];
    size_t len;
};

static void put(struct text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : sizeof t->buf - t->len - 1;
}

/* Short data as hex; long data as its length and FNV-1a hash. */
static void put_data(struct text *t, micrun_bytes b) {
    if (b.len > 16) {
        uint32_t h = 0x811c9dc5u;
        for (size_t i = 0; i < b.len; i++) h = (h ^ b.ptr[i]) * 0x01000193u;
        put(t, "data=[%zu bytes fnv=%08" PRIx32 "]", b.len, h);
        return;
    }
    put(t, "data=[");
    for (size_t i = 0; i < b.len; i++) put(t, "%02x", b.ptr[i]);
    put(t, "]");
}

static void put_str(struct text *t, const char *name, micrun_bytes b) {
    put(t, " %s=\"%.*s\"", name, (int)b.len, (const char *)b.ptr);
}

static const char *stream_name(uint32_t s) {
    return s == MICRUN_STREAM_STDIN    ? "stdin"
           : s == MICRUN_STREAM_STDOUT ? "stdout"
           : s == MICRUN_STREAM_STDERR ? "stderr"
           : s == MICRUN_STREAM_EXEC   ? "exec"
                                       : "?";
}

static void describe_host(struct text *t, const micrun_host_msg *m) {
    switch (m->kind) {
    case MICRUN_HOST_HELLO:
        put(t, "Hello v%u.%u features=%" PRIu32 " max_frame=%u session=%" PRIu32,
            m->hello.version.major, m->hello.version.minor, m->hello.features,
            m->hello.max_frame, m->hello.session);
        break;
    case MICRUN_HOST_PING: put(t, "Ping nonce=%" PRIu32, m->nonce); break;
    case MICRUN_HOST_STOP: put(t, "Stop grace_ms=%" PRIu32, m->grace_ms); break;
    case MICRUN_HOST_SIGNAL: put(t, "Signal signo=%u", m->signo); break;
    case MICRUN_HOST_CONSOLE_IN:
        put(t, "ConsoleIn ");
        put_data(t, m->data);
        break;
    case MICRUN_HOST_RESIZE: put(t, "Resize rows=%u cols=%u", m->rows, m->cols); break;
    case MICRUN_HOST_CREDIT:
        put(t, "Credit stream=%s bytes=%" PRIu32, stream_name(m->stream), m->bytes);
        break;
    case MICRUN_HOST_STATS_REQUEST: put(t, "StatsRequest"); break;
    case MICRUN_HOST_EXEC_START:
        /* Every argument ends in a NUL: print them space-separated. */
        put(t, "ExecStart exec=%" PRIu32 " argv=[", m->exec);
        for (size_t i = 0, start = 0; i < m->argv.len; i++) {
            if (m->argv.ptr[i] != 0) continue;
            put(t, "%s%.*s", start ? " " : "", (int)(i - start), (const char *)m->argv.ptr + start);
            start = i + 1;
        }
        put(t, "]");
        break;
    case MICRUN_HOST_EXEC_SIGNAL:
        put(t, "ExecSignal exec=%" PRIu32 " signo=%u", m->exec, m->signo);
        break;
    default: put(t, "unknown kind %" PRIu32, m->kind);
    }
}

static void describe_rtos(struct text *t, const micrun_rtos_msg *m) {
    static const char *reasons[] = {"normal", "panic", "fault", "watchdog"};
    static const char *levels[] = {"error", "warn", "info", "debug", "trace"};
    switch (m->kind) {
    case MICRUN_RTOS_HELLO_ACK:
        put(t, "HelloAck v%u.%u features=%" PRIu32 " max_frame=%u session=%" PRIu32,
            m->hello_ack.version.major, m->hello_ack.version.minor, m->hello_ack.features,
            m->hello_ack.max_frame, m->hello_ack.session);
        put_str(t, "agent_version", m->hello_ack.agent_version);
        put_str(t, "os", m->hello_ack.os);
        put_str(t, "board", m->hello_ack.board);
        break;
    case MICRUN_RTOS_READY: put(t, "Ready"); break;
    case MICRUN_RTOS_PONG:
        put(t, "Pong nonce=%" PRIu32 " uptime_ms=%" PRIu64, m->nonce, m->uptime_ms);
        break;
    case MICRUN_RTOS_CONSOLE_OUT:
        put(t, "ConsoleOut stream=%s ", stream_name(m->stream));
        put_data(t, m->data);
        break;
    case MICRUN_RTOS_CREDIT:
        put(t, "Credit stream=%s bytes=%" PRIu32, stream_name(m->stream), m->bytes);
        break;
    case MICRUN_RTOS_STATS:
        put(t, "Stats uptime_ms=%" PRIu64 " cpu_load_permille=%u mem_used_kib=%" PRIu32
               " mem_total_kib=%" PRIu32,
            m->stats.uptime_ms, m->stats.cpu_load_permille, m->stats.mem_used_kib,
            m->stats.mem_total_kib);
        break;
    case MICRUN_RTOS_EXITED:
        put(t, "Exited code=%" PRId32 " reason=%s", m->code,
            m->reason < 4 ? reasons[m->reason] : "?");
        break;
    case MICRUN_RTOS_LOG:
        put(t, "Log level=%s", m->level < 5 ? levels[m->level] : "?");
        put_str(t, "text", m->text);
        break;
    case MICRUN_RTOS_ANNOUNCE:
        put(t, "Announce v%u.%u max_frame=%u", m->announce.version.major,
            m->announce.version.minor, m->announce.max_frame);
        break;
    case MICRUN_RTOS_EXEC_EXITED:
        put(t, "ExecExited exec=%" PRIu32 " code=%" PRId32, m->exec, m->code);
        break;
    default: put(t, "unknown kind %" PRIu32, m->kind);
    }
}

/* What each vector holds, written from the cases in micrun-proto/tests/vectors.rs. */
static const struct {
    const char *name;
    const char *want;
} expected[] = {
    {"hello", "Hello v1.0 features=15 max_frame=496 session=1"},
    {"hello_1_2", "Hello v1.2 features=31 max_frame=496 session=2"},
    {"hello_max", "Hello v255.255 features=4294967295 max_frame=65535 session=4294967295"},
    {"ping_1", "Ping nonce=1"},
    {"ping_max", "Ping nonce=4294967295"},
    {"stop", "Stop grace_ms=5000"},
    {"stop_0", "Stop grace_ms=0"},
    {"signal_0", "Signal signo=0"},
    {"signal_255", "Signal signo=255"},
    {"console_in_empty", "ConsoleIn data=[]"},
    {"console_in_1", "ConsoleIn data=[61]"},
    {"console_in_zeros", "ConsoleIn data=[006100006200]"},
    {"console_in_480", "ConsoleIn data=[480 bytes fnv=80fd2e52]"},
    {"resize", "Resize rows=24 cols=80"},
    {"resize_max", "Resize rows=65535 cols=65535"},
    {"h_credit_stdin", "Credit stream=stdin bytes=512"},
    {"h_credit_stdout", "Credit stream=stdout bytes=8192"},
    {"h_credit_stderr", "Credit stream=stderr bytes=4294967295"},
    {"stats_request", "StatsRequest"},
    {"exec_start", "ExecStart exec=1 argv=[stats]"},
    {"exec_start_max", "ExecStart exec=4294967295 argv=[abcdefgh bcdefghi cdefghij defghijk efghijkl"
                       " fghijklm ghijklmn hijklmno ijklmno]"},
    {"exec_start_empty", "ExecStart exec=0 argv=[]"},
    {"exec_signal", "ExecSignal exec=300 signo=9"},
    {"h_credit_exec", "Credit stream=exec bytes=4096"},
    {"h_seq_255", "StatsRequest"},
    {"h_pure_ack_255", "(pure ack)"},
    {"hello_ack", "HelloAck v1.0 features=15 max_frame=253 session=1 agent_version=\"0.1.0\""
                  " os=\"uniproton\" board=\"qemu-virt\""},
    {"hello_ack_1_2", "HelloAck v1.2 features=31 max_frame=253 session=2 agent_version=\"0.3.0\""
                      " os=\"zephyr\" board=\"qemu-virt\""},
    {"hello_ack_empty", "HelloAck v1.0 features=0 max_frame=96 session=0 agent_version=\"\""
                        " os=\"\" board=\"\""},
    {"hello_ack_24", "HelloAck v255.255 features=4294967295 max_frame=65535 session=4294967295"
                     " agent_version=\"abcdefghijklmnopqrstuvwx\" os=\"abcdefghijklmnopqrstuvwx\""
                     " board=\"abcdefghijklmnopqrstuvwx\""},
    {"ready", "Ready"},
    {"pong", "Pong nonce=1 uptime_ms=1234"},
    {"pong_max", "Pong nonce=4294967295 uptime_ms=18446744073709551615"},
    {"console_out_stdout", "ConsoleOut stream=stdout data=[68656c6c6f0a]"},
    {"console_out_stderr", "ConsoleOut stream=stderr data=[006500]"},
    {"console_out_480", "ConsoleOut stream=stdout data=[480 bytes fnv=80fd2e52]"},
    {"r_credit_stdin", "Credit stream=stdin bytes=128"},
    {"r_credit_stdout", "Credit stream=stdout bytes=0"},
    {"r_credit_stderr", "Credit stream=stderr bytes=4294967295"},
    {"stats", "Stats uptime_ms=60000 cpu_load_permille=125 mem_used_kib=300 mem_total_kib=1024"},
    {"stats_max", "Stats uptime_ms=18446744073709551615 cpu_load_permille=65535"
                  " mem_used_kib=4294967295 mem_total_kib=4294967295"},
    {"exited_normal_0", "Exited code=0 reason=normal"},
    {"exited_panic_neg1", "Exited code=-1 reason=panic"},
    {"exited_fault_min", "Exited code=-2147483648 reason=fault"},
    {"exited_watchdog_max", "Exited code=2147483647 reason=watchdog"},
    {"log_error", "Log level=error text=\"oops\""},
    {"log_warn", "Log level=warn text=\"low memory\""},
    {"log_info", "Log level=info text=\"booted\""},
    {"log_debug", "Log level=debug text=\"tick\""},
    {"log_trace_empty", "Log level=trace text=\"\""},
    {"log_info_80", "Log level=info text=\"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOP"
                    "QRSTUVWXYZ[\\]^_`abcdefghijklmnop\""},
    {"log_utf8", "Log level=warn text=\"temp\xc3\xa9rature \xe2\x89\xa5 90\xc2\xb0"
                 "C\""},
    {"console_out_exec", "ConsoleOut stream=exec data=[757074696d65203132206d730a]"},
    {"exec_exited", "ExecExited exec=1 code=0"},
    {"exec_exited_137", "ExecExited exec=4294967295 code=137"},
    {"exec_exited_negative", "ExecExited exec=300 code=-2147483648"},
    {"r_seq_255", "Ready"},
    {"announce", "Announce v1.1 max_frame=253"},
    {"announce_ack_max", "Announce v255.255 max_frame=65535"},
    {"r_pure_ack_255", "(pure ack)"},
};
#define N_EXPECTED (sizeof expected / sizeof expected[0])

/* ---- the checks ----------------------------------------------------------------- */

/* Wire -> framer -> frame, fed whole and byte by byte. */
static void check_framer(const struct vector *v) {
    uint8_t storage[MICRUN_FRAMER_STORAGE];
    micrun_framer f;
    if (micrun_framer_init(&f, storage, sizeof storage) != MICRUN_OK) {
        fail(v, "micrun_framer_init");
        return;
    }
    size_t used = 0;
    micrun_bytes fr;
    micrun_status st = micrun_framer_feed(&f, v->wire, v->wire_len, &used, &fr);
    if (st != MICRUN_OK || used != v->wire_len || !same(fr.ptr, fr.len, v->frame, v->frame_len))
        fail(v, "framer (whole): status %d, consumed %zu of %zu, frame %zu bytes", st, used,
             v->wire_len, fr.len);
    if (f.counters.frames != 1) fail(v, "framer counted %" PRIu64 " frames", f.counters.frames);

    if (micrun_framer_init(&f, storage, sizeof storage) != MICRUN_OK) return;
    for (size_t i = 0; i < v->wire_len; i++) {
        st = micrun_framer_feed(&f, &v->wire[i], 1, &used, &fr);
        int last = i + 1 == v->wire_len;
        if (st != MICRUN_OK || used != 1 || (fr.len != 0) != last) {
            fail(v, "framer (byte %zu): status %d, frame %zu bytes", i, st, fr.len);
            return;
        }
    }
    if (!same(fr.ptr, fr.len, v->frame, v->frame_len)) fail(v, "framer (bytewise): wrong frame");
}

static void check_message(const struct vector *v, micrun_bytes payload) {
    struct text t = {.len = 0};
    uint8_t again[VEC_MAX_BYTES];
    size_t n = 0, need = 0;
    micrun_status st;
    if (payload.len == 0) {
        put(&t, "(pure ack)");
    } else if (v->h2r) {
        micrun_host_msg m;
        st = micrun_host_msg_decode(payload.ptr, payload.len, &m);
        if (st != MICRUN_OK) {
            fail(v, "micrun_host_msg_decode: %s", micrun_status_str(st));
            return;
        }
        describe_host(&t, &m);
        st = micrun_host_msg_encode(&m, again, sizeof again, &n);
        if (st != MICRUN_OK || !same(again, n, payload.ptr, payload.len))
            fail(v, "micrun_host_msg_encode: status %d, %zu bytes", st, n);
        st = micrun_host_msg_encode(&m, NULL, 0, &need);
        if (st != MICRUN_ERR_BUFFER_TOO_SHORT || need != payload.len)
            fail(v, "size query: status %d, need %zu", st, need);
        st = micrun_host_msg_encode(&m, again, payload.len - 1, &need);
        if (st != MICRUN_ERR_BUFFER_TOO_SHORT || need != payload.len)
            fail(v, "one byte short: status %d, need %zu", st, need);
    } else {
        micrun_rtos_msg m;
        st = micrun_rtos_msg_decode(payload.ptr, payload.len, &m);
        if (st != MICRUN_OK) {
            fail(v, "micrun_rtos_msg_decode: %s", micrun_status_str(st));
            return;
        }
        describe_rtos(&t, &m);
        st = micrun_rtos_msg_encode(&m, again, sizeof again, &n);
        if (st != MICRUN_OK || !same(again, n, payload.ptr, payload.len))
            fail(v, "micrun_rtos_msg_encode: status %d, %zu bytes", st, n);
        st = micrun_rtos_msg_encode(&m, NULL, 0, &need);
        if (st != MICRUN_ERR_BUFFER_TOO_SHORT || need != payload.len)
            fail(v, "size query: status %d, need %zu", st, need);
        st = micrun_rtos_msg_encode(&m, again, payload.len - 1, &need);
        if (st != MICRUN_ERR_BUFFER_TOO_SHORT || need != payload.len)
            fail(v, "one byte short: status %d, need %zu", st, need);
    }
    for (size_t i = 0; i < N_EXPECTED; i++) {
        if (strcmp(expected[i].name, v->name) == 0) {
            if (strcmp(expected[i].want, t.buf) != 0)
                fail(v, "decoded \"%s\", expected \"%s\"", t.buf, expected[i].want);
            return;
        }
    }
    fail(v, "no expectation in codec_vectors.c for this vector (decoded \"%s\")", t.buf);
}

static void check_vector(const struct vector *v) {
    check_framer(v);

    micrun_frame_header h;
    micrun_bytes payload;
    micrun_status st = micrun_frame_parse(v->frame, v->frame_len, &h, &payload);
    if (st != MICRUN_OK) {
        fail(v, "micrun_frame_parse: %s", micrun_status_str(st));
        return;
    }
    if (h.flags != v->flags || h.seq != v->seq || h.ack != v->ack)
        fail(v, "header %02x %u %u, expected %02x %u %u", h.flags, h.seq, h.ack, v->flags, v->seq,
             v->ack);
    if (!same(payload.ptr, payload.len, v->payload, v->payload_len))
        fail(v, "payload of %zu bytes, expected %zu", payload.len, v->payload_len);
    check_message(v, payload);

    uint16_t crc = 0;
    st = micrun_crc16(v->frame, v->frame_len - 2, &crc);
    if (st != MICRUN_OK || (crc & 0xff) != v->frame[v->frame_len - 2] ||
        crc >> 8 != v->frame[v->frame_len - 1])
        fail(v, "micrun_crc16 gives %04x", crc);

    /* Build the frame from the header and payload, separately and in place. */
    uint8_t frame[VEC_MAX_BYTES], wire[VEC_MAX_BYTES];
    size_t n = 0, wn = 0;
    micrun_frame_header want = {.flags = v->flags, .seq = v->seq, .ack = v->ack};
    st = micrun_frame_build(&want, v->payload, v->payload_len, frame, sizeof frame, &n);
    if (st != MICRUN_OK || !same(frame, n, v->frame, v->frame_len))
        fail(v, "micrun_frame_build: status %d, %zu bytes", st, n);
    memset(frame, 0xee, sizeof frame);
    if (v->payload_len) memcpy(frame + MICRUN_FRAME_HEADER_LEN, v->payload, v->payload_len);
    st = micrun_frame_build(&want, frame + MICRUN_FRAME_HEADER_LEN, v->payload_len, frame,
                            sizeof frame, &n);
    if (st != MICRUN_OK || !same(frame, n, v->frame, v->frame_len))
        fail(v, "micrun_frame_build in place: status %d, %zu bytes", st, n);

    st = micrun_wire_encode(v->frame, v->frame_len, wire, sizeof wire, &wn);
    if (st != MICRUN_OK || !same(wire, wn, v->wire, v->wire_len))
        fail(v, "micrun_wire_encode: status %d, %zu bytes", st, wn);
    st = micrun_wire_encode(frame, n, frame, sizeof frame, &wn);
    if (st != MICRUN_OK || !same(frame, wn, v->wire, v->wire_len))
        fail(v, "micrun_wire_encode in place: status %d, %zu bytes", st, wn);
}

/* All wire vectors back to back, fed 7 bytes at a time: every frame, in order. */
static void check_stream(const struct vector *v, long n) {
    size_t total = 0;
    for (long i = 0; i < n; i++) total += v[i].wire_len;
    uint8_t *stream = malloc(total ? total : 1);
    if (!stream) return;
    size_t pos = 0;
    for (long i = 0; i < n; i++) {
        memcpy(stream + pos, v[i].wire, v[i].wire_len);
        pos += v[i].wire_len;
    }
    uint8_t storage[MICRUN_FRAMER_STORAGE];
    micrun_framer f;
    micrun_framer_init(&f, storage, sizeof storage);
    long next = 0;
    for (pos = 0; pos < total;) {
        size_t chunk = total - pos < 7 ? total - pos : 7, used = 0;
        micrun_bytes fr;
        micrun_status st = micrun_framer_feed(&f, stream + pos, chunk, &used, &fr);
        if (st != MICRUN_OK || used == 0) {
            fail(NULL, "stream: status %d at offset %zu", st, pos);
            break;
        }
        pos += used;
        if (fr.len) {
            if (next >= n || !same(fr.ptr, fr.len, v[next].frame, v[next].frame_len))
                fail(next < n ? &v[next] : NULL, "stream: wrong frame");
            next++;
        }
    }
    if (next != n || f.counters.frames != (uint64_t)n)
        fail(NULL, "stream: %ld frames of %ld", next, n);
    free(stream);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s tests/vectors/messages.txt\n", argv[0]);
        return 2;
    }
    printf("libmicrun %s\n", micrun_version());
    struct vector *v = NULL;
    long n = load_vectors(argv[1], &v);
    if (n <= 0) return 2;
    for (long i = 0; i < n; i++) check_vector(&v[i]);
    check_stream(v, n);
    for (size_t i = 0; i < N_EXPECTED; i++) {
        int found = 0;
        for (long j = 0; j < n && !found; j++) found = strcmp(v[j].name, expected[i].name) == 0;
        if (!found) fprintf(stderr, "FAIL %s: expected but not in the file\n", expected[i].name);
        failures += !found;
    }
    free(v);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("%ld vectors ok\n", n);
    return 0;
}
