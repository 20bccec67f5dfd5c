/* SPDX-License-Identifier: MulanPSL-2.0 */
/*
 * Every bad input of the shim, seen from C through libmicrun's runtime API: each
 * case is a bundle (and a micrun config) that micrun_rt_create must refuse with
 * an error code and a message naming the problem, leaving no <bundle>/address
 * behind. The cases come from tests/tests/c_runtime.rs as a file of lines:
 *
 *   <bundle> TAB <container id> TAB <config path> TAB <keyword>[|<keyword>...]
 *
 * Keywords are matched case-insensitively in micrun_last_error().
 * Usage: rt_bad_bundles SHIM NS CASES
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "micrun.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s SHIM NS CASES\n", argv[0]);
        return 2;
    }
    FILE *cases = fopen(argv[3], "r");
    if (!cases) {
        perror(argv[3]);
        return 2;
    }
    char line[4096];
    int n = 0, failed = 0;
    while (fgets(line, sizeof line, cases)) {
        line[strcspn(line, "\n")] = '\0';
        char *bundle = strtok(line, "\t");
        char *id = strtok(NULL, "\t");
        char *config = strtok(NULL, "\t");
        char *keywords = strtok(NULL, "\t");
        if (!bundle || !id || !config || !keywords) {
            fprintf(stderr, "bad case line %d\n", n + 1);
            return 2;
        }
        n++;
        micrun_rt_opts opts = {
            .ns = argv[2],
            .id = id,
            .bundle = bundle,
            .shim_binary = argv[1],
            .config_path = config,
        };
        uint32_t pid = 0;
        micrun_status st = micrun_rt_create(&opts, &pid);
        const char *msg = micrun_last_error();
        if (st == MICRUN_OK) {
            printf("FAIL %s: created (pid %u)\n", id, pid);
            failed++;
            continue;
        }
        int missing = 0;
        for (char *k = strtok(keywords, "|"); k; k = strtok(NULL, "|")) {
            if (!strcasestr(msg, k)) {
                printf("FAIL %s: \"%s\" not in the error: %s\n", id, k, msg);
                missing = 1;
            }
        }
        char addr[4200];
        snprintf(addr, sizeof addr, "%s/address", bundle);
        if (access(addr, F_OK) == 0) {
            printf("FAIL %s: %s left behind\n", id, addr);
            missing = 1;
        }
        failed += missing;
        if (!missing) printf("ok %s (%s): %s\n", id, micrun_status_str(st), msg);
    }
    fclose(cases);
    printf("%d cases, %d failed\n", n, failed);
    return failed == 0 && n > 0 ? 0 : 1;
}
