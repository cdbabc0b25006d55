#!/bin/sh
# Progress output: each line reaches the browser as it is written
# (nginx needs fastcgi_buffering off for this location).
printf 'Content-Type: text/plain\n\n'
for i in 1 2 3 4 5; do
	echo "step $i of 5"
	sleep 1
done
echo done
