/* Small files of /proc and /sys (see sysfile.h). */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sysfile.h"

ssize_t sysfile_read(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

int sysfile_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

size_t sysfile_mounts(const char *type, char (*paths)[PATH_MAX], size_t max)
{
	FILE *f = fopen("/proc/mounts", "re");
	char line[PATH_MAX + 256];
	size_t n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char dev[64], dir[PATH_MAX], fstype[64];
		/* Spaces in the mount point come as \040: such a path is
		 * taken as it is written, and so not found. */
		if (sscanf(line, "%63s %4095s %63s", dev, dir, fstype) == 3 && strcmp(fstype, type) == 0)
			memcpy(paths[n++], dir, strlen(dir) + 1);
	}
	fclose(f);
	return n;
}
