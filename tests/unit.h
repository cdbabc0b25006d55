/* The unit test programs' one check: each counts, and prints a line per
 * failure; main() ends with a closing "N passed, N failed". */
#ifndef FCGIWRAP_TESTS_UNIT_H
#define FCGIWRAP_TESTS_UNIT_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (cond) {                                       \
			passed++;                                 \
		} else {                                          \
			failed++;                                 \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__);                      \
			printf("\n");                             \
		}                                                 \
	} while (0)

#endif
