# Reads one file of a sandbox for the grading probe, as root in the sandbox would see it:
#
#   perl -e "$(cat probe-read-file.pl)" ENGINE_PID PATH MAX_BYTES
#
# Runs as root in the probe, in the host's PID namespace. It changes its root to the sandbox's
# engine's root first, so a symlink the learner planted (absolute, or through /proc) resolves
# inside the sandbox, never in the probe or on the host. Only regular files are read (a FIFO would
# block, a device could be endless). Exit 0 with the content on stdout, 1 when there is no such
# regular file.
#
# WARNING: after chroot, nothing may be loaded from disk: the sandbox's tree is the learner's.
# Everything this needs is compiled in before it.
use strict;
use warnings;
use Fcntl qw(O_RDONLY O_NONBLOCK);
use POSIX ();

my ($engine_pid, $path, $max) = @ARGV;
die "usage: ENGINE_PID PATH MAX_BYTES\n" unless defined $max && $engine_pid =~ /^[1-9][0-9]*$/ && $max =~ /^[0-9]+$/ && $path =~ m{^/};
my $exe = readlink("/proc/$engine_pid/exe") // "";
die "process $engine_pid is not the sandbox's engine ($exe)\n" unless $exe =~ m{/dockerd( \(deleted\))?$};
chroot("/proc/$engine_pid/root") or die "chroot: $!\n";
chdir("/") or die "chdir: $!\n";
# O_NONBLOCK: opening a FIFO must not wait for a writer; -f below refuses it anyway.
sysopen(my $file, $path, O_RDONLY | O_NONBLOCK) or POSIX::_exit(1);
POSIX::_exit(1) unless -f $file;
binmode STDOUT;
my $left = $max;
while ($left > 0) {
  my $n = sysread($file, my $buffer, $left < 65536 ? $left : 65536);
  last unless $n;
  print STDOUT $buffer;
  $left -= $n;
}
close STDOUT or POSIX::_exit(2);
POSIX::_exit(0);
