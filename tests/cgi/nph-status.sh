#!/bin/sh
# An NPH script: it writes the HTTP status line itself.
printf 'HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-NPH: yes\r\n\r\nnph body\n'
