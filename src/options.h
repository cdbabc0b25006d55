/* The command line, parsed into the settings (settings.h). */
#ifndef FCGIWRAP_OPTIONS_H
#define FCGIWRAP_OPTIONS_H

/* Sets every default, then what argv asks.  A bad option or argument
 * exits with a message and status 1; --help, --version and -s help print
 * and exit 0. */
void options_parse(int argc, char **argv);

#endif
