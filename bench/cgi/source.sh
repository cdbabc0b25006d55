#!/bin/sh
# Download benchmark: BYTES (QUERY_STRING) of zeros.
printf 'Content-Type: application/octet-stream\r\n\r\n'
exec head -c "$QUERY_STRING" /dev/zero
