/* The requests running now (see activity.h).  A request adds itself when
 * its head has been read and removes itself when it ends, under one lock
 * the status page takes too, so a record is never read once freed; the
 * counters that move while it runs are atomics. */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "activity.h"
#include "clock.h"
#include "escape.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct activity *head;

static const char *const state_names[] = { "queued", "body", "running", "sending" };

void activity_begin(struct activity *a, const char *client, const char *method, const char *uri)
{
	a->start_ms = monotonic_ms();
	a->client = client;
	a->method = method;
	a->uri = uri;
	a->script = NULL;
	a->pid = 0;
	atomic_init(&a->bytes_in, 0);
	atomic_init(&a->bytes_out, 0);
	atomic_init(&a->state, ACTIVITY_QUEUED);
	pthread_mutex_lock(&lock);
	a->prev = NULL;
	a->next = head;
	if (head)
		head->prev = a;
	head = a;
	pthread_mutex_unlock(&lock);
}

void activity_set_script(struct activity *a, const char *script, pid_t pid)
{
	pthread_mutex_lock(&lock);
	a->script = script;
	a->pid = pid;
	pthread_mutex_unlock(&lock);
}

void activity_end(struct activity *a)
{
	pthread_mutex_lock(&lock);
	if (a->prev)
		a->prev->next = a->next;
	else if (head == a)
		head = a->next;
	if (a->next)
		a->next->prev = a->prev;
	a->prev = a->next = NULL;
	pthread_mutex_unlock(&lock);
}

/* The same for a text line: no byte can start another line. */
static void text_field(FILE *m, const char *s)
{
	if (!s || !*s) {
		fputc('-', m);
		return;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f || c == '\\')
			fprintf(m, "\\x%02x", c);
		else
			fputc(c, m);
	}
}

void activity_render(FILE *m, const char *format)
{
	bool json = strcmp(format, "json") == 0;
	long long now = monotonic_ms();
	int n = 0;

	pthread_mutex_lock(&lock);
	if (json)
		fputs("[", m);
	for (struct activity *a = head; a; a = a->next, n++) {
		int state = atomic_load(&a->state);
		unsigned long long in = atomic_load(&a->bytes_in), out = atomic_load(&a->bytes_out);
		if (json) {
			fprintf(m, "%s{\"pid\":%d,\"script\":", n ? "," : "", (int)a->pid);
			escape_json_string(m, a->script);
			fputs(",\"client\":", m);
			escape_json_string(m, a->client);
			fputs(",\"method\":", m);
			escape_json_string(m, a->method);
			fputs(",\"uri\":", m);
			escape_json_string(m, a->uri);
			fprintf(m, ",\"elapsed ms\":%lld,\"bytes in\":%llu,\"bytes out\":%llu,\"state\":\"%s\"}",
				now - a->start_ms, in, out, state_names[state]);
			continue;
		}
		fprintf(m, "pid %d, %s, ", (int)a->pid, state_names[state]);
		text_field(m, a->script);
		fputs(", ", m);
		text_field(m, a->client);
		fputc(' ', m);
		text_field(m, a->method);
		fputc(' ', m);
		text_field(m, a->uri);
		fprintf(m, ", %lld ms, %llu bytes in, %llu bytes out\n", now - a->start_ms, in, out);
	}
	if (json)
		fputs("]", m);
	pthread_mutex_unlock(&lock);
}
