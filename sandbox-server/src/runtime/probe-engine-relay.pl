# The grading probe's engine relay (docs/grading.md, "Where grading runs"). Runs as root in the
# probe, in the host's PID namespace, where the sandbox's engine is process ENGINE_PID (the
# sandbox's first process, as the host's engine reports it; the learner cannot name that number
# from inside, nor see or trace this process).
#
#   perl -e "$(cat probe-engine-relay.pl)" ENGINE_PID LISTEN_PATH
#
# Listens on LISTEN_PATH, where the probe's `docker` and `curl` connect. For each connection it
# connects to the sandbox's engine socket, asks the kernel who is listening there (SO_PEERCRED:
# the process that called listen(), as a pid of this namespace), and relays bytes only when that
# is ENGINE_PID itself. Anything else at that path (a fake bind-mounted over it, a socket served
# from another network namespace, a proxy in front of the engine, nothing at all) gets an HTTP 502
# whose message starts with "shipshape-probe refused", and the server tells the learner so.
#
# WARNING: this process holds CAP_SYS_PTRACE in the host's PID namespace. It parses nothing the
# learner controls: it copies bytes both ways and reads one socket option. Keep it that way.
use strict;
use warnings;
use Socket qw(AF_UNIX SOCK_STREAM SOL_SOCKET SO_PEERCRED SHUT_WR pack_sockaddr_un);
use POSIX ();

my ($engine_pid, $listen_path) = @ARGV;
die "usage: ENGINE_PID LISTEN_PATH\n" unless defined $listen_path && $engine_pid =~ /^[1-9][0-9]*$/;

# /var/run is an absolute symlink, which would resolve in this probe's own root: use /run.
my $engine_socket = "/proc/$engine_pid/root/run/docker.sock";
$SIG{CHLD} = 'IGNORE'; # connection handlers are reaped by the kernel
$SIG{PIPE} = 'IGNORE'; # a peer that hangs up ends a copy with EPIPE, not this process

socket(my $server, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
unlink $listen_path;
bind($server, pack_sockaddr_un($listen_path)) or die "bind $listen_path: $!\n";
# The probe's tools run as an unprivileged user of their own; only they are in this mount namespace.
chmod 0666, $listen_path or die "chmod $listen_path: $!\n";
listen($server, 128) or die "listen: $!\n";

while (1) {
  my $client;
  accept($client, $server) or next;
  my $child = fork;
  if (!defined $child || $child) {
    close $client;
    next;
  }
  close $server;
  serve($client);
  POSIX::_exit(0);
}

sub refuse {
  my ($client, $why) = @_;
  # Read the request's head first (it comes from the probe's own tools): an answer that arrives
  # before the request is written breaks the client's write, and it would report a broken pipe
  # instead of this reason.
  my $request = "";
  my $ready = "";
  vec($ready, fileno($client), 1) = 1;
  while ($request !~ /\r\n\r\n/ && length($request) < 65536 && select(my $r = $ready, undef, undef, 2)) {
    sysread($client, $request, 4096, length $request) or last;
  }
  $why =~ s/[^A-Za-z0-9 .,:()\/_-]/?/g; # the engine's exe path is the learner's to name
  my $body = qq({"message":"shipshape-probe refused this connection: $why"});
  print STDERR "shipshape-probe refused: $why\n";
  syswrite($client, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
}

sub serve {
  my ($client) = @_;
  # The sandbox's entrypoint execs dockerd as its first process; a first process that is something
  # else was replaced (through ptrace), and nothing it answers can be trusted.
  my $exe = readlink("/proc/$engine_pid/exe") // "gone ($!)";
  return refuse($client, "the first process of the sandbox is $exe, not its engine (dockerd)") unless $exe =~ m{/dockerd( \(deleted\))?$}; # still the binary it started with, if a package update replaced the file
  socket(my $engine, AF_UNIX, SOCK_STREAM, 0) or return refuse($client, "socket: $!");
  connect($engine, pack_sockaddr_un($engine_socket)) or return refuse($client, "nothing answers at /run/docker.sock ($!)");
  my $cred = getsockopt($engine, SOL_SOCKET, SO_PEERCRED) or return refuse($client, "no peer credentials: $!");
  my ($peer) = unpack("l", $cred);
  # 0: the listener is in a PID namespace this one cannot see, which the sandbox's engine never is.
  return refuse($client, "/run/docker.sock is served by process $peer, not by the engine of the sandbox (process $engine_pid)")
    unless $peer == $engine_pid;
  # Both directions at once, each ending with a half-close, so hijacked streams (docker run's
  # attach) see the end of input while the engine's answer still flows.
  my $upstream = fork;
  return refuse($client, "fork: $!") unless defined $upstream;
  if ($upstream == 0) {
    copy($client, $engine);
    POSIX::_exit(0);
  }
  copy($engine, $client);
}

sub copy {
  my ($from, $to) = @_;
  my $buffer;
  while (1) {
    my $n = sysread($from, $buffer, 65536);
    last unless $n;
    my $offset = 0;
    while ($offset < $n) {
      my $written = syswrite($to, $buffer, $n - $offset, $offset);
      return unless defined $written;
      $offset += $written;
    }
  }
  shutdown($to, SHUT_WR);
}
