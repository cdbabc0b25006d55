/* --script-limit: classes of scripts (a program, or the programs under a
 * directory), each with a limit of its own on how many run at once. */
#ifndef FCGIWRAP_SCRIPT_CLASSES_H
#define FCGIWRAP_SCRIPT_CLASSES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "slots.h"

struct script_class {
	char *path;             /* canonical; a directory ends in '/' */
	struct slot_pool pool;  /* limit slots, their own queue */
	atomic_bool overloaded; /* 503s logged, not yet over */
};

/* Makes the classes from the options (once in the --chroot).  Returns 0,
 * or -1 with *why. */
int script_classes_init(char *why, size_t size);

/* The class of the script at path (the first that matches), or NULL. */
struct script_class *script_class_of(const char *path);

/* Each class's limit, running and queued: "text", "json" (an array), or
 * "openmetrics" lines. */
void script_classes_render(FILE *m, const char *format);

#endif
