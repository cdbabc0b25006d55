/* libFuzzer target: script path resolution against a made-up file system
 * (a path's kind follows from a hash of it).  The input is SCRIPT_FILENAME,
 * DOCUMENT_ROOT and SCRIPT_NAME separated by NUL bytes.  A split of
 * SCRIPT_NAME must give back SCRIPT_NAME, and never reach above
 * DOCUMENT_ROOT. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/script_path.h"

static enum file_kind hashed_kind(const char *path, void *ctx)
{
	uint32_t h = 2166136261u;
	(void)ctx;
	for (const char *p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	switch (h % 7) {
	case 0: return FILE_EXECUTABLE;
	case 1: return FILE_DIRECTORY;
	case 2: return FILE_NOT_EXECUTABLE;
	case 3: return FILE_OTHER;
	default: return FILE_MISSING;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 3);
	const char *parts[3];
	struct script_location loc;
	const char *why;
	size_t pos = 0;

	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = buf[size + 2] = '\0';
	for (int i = 0; i < 3; i++) {
		parts[i] = buf + pos;
		pos += strlen(buf + pos) + 1;
		if (pos > size + 2)
			pos = size + 2;
	}
	if (script_resolve(parts[0], parts[1], parts[2], hashed_kind, NULL, &loc, &why) == SCRIPT_FOUND) {
		if (hashed_kind(loc.filename, NULL) != FILE_EXECUTABLE)
			abort();
		if (!*parts[0]) {
			/* Found under DOCUMENT_ROOT: the SCRIPT_NAME part is a prefix
			 * of SCRIPT_NAME, and PATH_INFO the rest. */
			if (loc.script_name) {
				size_t n = strlen(loc.script_name);
				if (strncmp(parts[2], loc.script_name, n) != 0 || strcmp(parts[2] + n, loc.path_info) != 0)
					abort();
			}
		} else if (strcmp(loc.filename, parts[0]) != 0) {
			abort();
		}
	}
	script_location_free(&loc);
	path_has_dotdot(parts[2]);
	free(buf);
	return 0;
}
