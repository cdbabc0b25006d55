#!/usr/bin/perl
# A Perl CGI.pm form handler: echoes a field, and the size and MD5 of an
# uploaded file.
use strict;
use warnings;
use CGI;
use Digest::MD5;

my $q = CGI->new;
print $q->header(-type => 'text/plain', -charset => 'utf-8');
printf "name=%s\n", scalar($q->param('name')) // '';
my $fh = $q->upload('file');
if ($fh) {
	binmode $fh;
	my $md5 = Digest::MD5->new;
	my $size = 0;
	while (my $n = read($fh, my $buf, 65536)) {
		$size += $n;
		$md5->add($buf);
	}
	printf "size=%d md5=%s\n", $size, $md5->hexdigest;
}
