#!/bin/sh
# The classic: a shell CGI script.
printf 'Content-Type: text/html; charset=utf-8\n\n'
cat <<HTML
<!doctype html>
<title>fcgiwrap</title>
<h1>Hello from a CGI script</h1>
<p>Served by fcgiwrap behind nginx, process $$, at $(date -u +%H:%M:%S) UTC.</p>
<ul>
<li><a href="env.sh/some/path?x=1">env.sh</a>: the environment a script sees (note PATH_INFO)</li>
<li><a href="stream.sh">stream.sh</a>: output streamed line by line</li>
<li><form method="post" action="upload.sh" enctype="multipart/form-data" style="display:inline">
<input type="file" name="f"> <button>upload.sh</button></form>: counts the bytes of a POST</li>
</ul>
HTML
