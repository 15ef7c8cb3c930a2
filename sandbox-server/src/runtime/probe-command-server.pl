# The grading probe's command server (docs/grading.md, "Where grading runs"). A kept probe runs one
# of these per check-time tool user, so a check costs no exec through the host's engine per
# command: the server writes a request line, this runs the command and answers one line.
#
#   perl -e "$(cat probe-command-server.pl)"     (stdin: requests, stdout: answers)
#
# Request:  base64(id) base64(timeout ms) base64(max bytes) base64(argv[0]) base64(argv[1]) ...
# Answer:   base64(id) EXIT TIMED_OUT TRUNCATED base64(stdout) base64(stderr)
# (an empty string is "-", which base64 never makes, so no field is ever empty)
#
# Runs as the probe's tools user (no capabilities, no-new-privileges), like the commands it starts.
# It reads requests only from the sandbox server; what the commands print (the learner's engine's
# answers) is only copied, base64-encoded, never interpreted here.
use strict;
use warnings;
use IO::Handle;
use IO::Select;
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX ();
use Time::HiRes ();

$SIG{PIPE} = 'IGNORE';
STDOUT->autoflush(1);

while (my $line = <STDIN>) {
  chomp $line;
  my ($id, $timeout_ms, $max, @argv) = map { $_ eq '-' ? '' : decode_base64($_) } split / /, $line;
  next unless defined $id && @argv && $timeout_ms =~ /^[0-9]+$/ && $max =~ /^[0-9]+$/;
  pipe(my $out_r, my $out_w) or die "pipe: $!\n";
  pipe(my $err_r, my $err_w) or die "pipe: $!\n";
  my $pid = fork // die "fork: $!\n";
  if ($pid == 0) {
    close $out_r;
    close $err_r;
    POSIX::setpgid(0, 0); # a timeout kills the command and whatever it started
    open STDIN, '<', '/dev/null';
    open STDOUT, '>&', $out_w;
    open STDERR, '>&', $err_w;
    exec { $argv[0] } @argv or POSIX::_exit(127);
  }
  close $out_w;
  close $err_w;
  my %name = (fileno($out_r) => 'out', fileno($err_r) => 'err');
  my %buf = (out => '', err => '');
  my $truncated = 0;
  my $timed_out = 0;
  my $deadline = Time::HiRes::time() + $timeout_ms / 1000;
  my $select = IO::Select->new($out_r, $err_r);
  while ($select->count) {
    my $left = $deadline - Time::HiRes::time();
    if ($left <= 0) {
      $timed_out = 1;
      kill 'KILL', -$pid;
      last;
    }
    for my $h ($select->can_read($left)) {
      my $n = sysread($h, my $chunk, 65536);
      if (!$n) {
        $select->remove($h);
        next;
      }
      my $k = $name{fileno $h};
      my $room = $max - length $buf{$k};
      $buf{$k} .= substr($chunk, 0, $room) if $room > 0;
      $truncated = 1 if $n > $room;
    }
  }
  close $out_r;
  close $err_r;
  waitpid($pid, 0);
  my $code = $timed_out ? -1 : ($? & 127) ? 128 + ($? & 127) : $? >> 8;
  print join(' ', map({ encode_base64($_, '') || '-' } $id), $code, $timed_out, $truncated, map({ encode_base64($_, '') || '-' } $buf{out}, $buf{err})), "\n";
}
