#!/bin/sh
# A slow request: sleeps QUERY_STRING seconds, then answers.
sleep "$QUERY_STRING"
printf 'Content-Type: text/plain\r\n\r\nslept\n'
