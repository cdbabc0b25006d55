#!/bin/sh
# Prints the CGI environment.
printf 'Content-Type: text/plain\n\n'
env | sort
