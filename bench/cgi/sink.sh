#!/bin/sh
# Upload benchmark: reads the whole body, then answers.
cat > /dev/null
printf 'Content-Type: text/plain\r\n\r\nok\n'
