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

/* The kernel writes a space, a tab, a newline and the backslash in a
 * mount point as \ooo (octal); out gets the path itself. */
static void unescape_mount_point(char *out, const char *in)
{
	while (*in) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' && in[3] >= '0' &&
		    in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
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
		if (sscanf(line, "%63s %4095s %63s", dev, dir, fstype) == 3 && strcmp(fstype, type) == 0)
			unescape_mount_point(paths[n++], dir);
	}
	fclose(f);
	return n;
}
