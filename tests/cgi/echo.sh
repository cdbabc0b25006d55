#!/bin/sh
# Prints the request's environment and body, for SCRIPT_NAME / PATH_INFO
# checks and body delivery.
printf 'Content-Type: text/plain\n\n'
echo "SCRIPT_NAME=$SCRIPT_NAME"
echo "PATH_INFO=$PATH_INFO"
echo "QUERY_STRING=$QUERY_STRING"
echo "BODY=$(cat)"
