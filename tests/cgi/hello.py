#!/usr/bin/python3
# A Python CGI script.
import os
import sys

sys.stdout.write("Content-Type: text/plain\r\n\r\n")
sys.stdout.write("python says %s\n" % os.environ.get("QUERY_STRING", ""))
