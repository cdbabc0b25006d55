#!/bin/sh
# Reads the request body and says how big it was.
printf 'Content-Type: text/plain\n\n'
echo "$REQUEST_METHOD with $(wc -c | tr -d ' ') bytes of $CONTENT_TYPE"
