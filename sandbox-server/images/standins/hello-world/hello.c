/* The hello-world image's program: print the message and exit 0. */
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH "amd64"
#elif defined(__aarch64__)
#define ARCH "arm64v8"
#elif defined(__arm__)
#define ARCH "arm32v7"
#else
#define ARCH "unknown"
#endif

static const char message[] =
    "\n"
    "Hello from Docker!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "\n"
    "To generate this message, Docker took the following steps:\n"
    " 1. The Docker client contacted the Docker daemon.\n"
    " 2. The Docker daemon pulled the \"hello-world\" image from the Docker Hub.\n"
    "    (" ARCH ")\n"
    " 3. The Docker daemon created a new container from that image which runs the\n"
    "    executable that produces the output you are currently reading.\n"
    " 4. The Docker daemon streamed that output to the Docker client, which sent it\n"
    "    to your terminal.\n"
    "\n"
    /* Docker Hub's text suggests ubuntu, which the offline mirror does not have; Debian it has. */
    "To try something more ambitious, you can run a Debian container with:\n"
    " $ docker run -it debian:bookworm-slim bash\n"
    "\n"
    "Share images, automate workflows, and more with a free Docker ID:\n"
    " https://hub.docker.com/\n"
    "\n"
    "For more examples and ideas, visit:\n"
    " https://docs.docker.com/get-started/\n"
    "\n";

int main(void) {
  const char *p = message;
  size_t left = sizeof message - 1;
  while (left > 0) {
    ssize_t n = write(1, p, left);
    if (n <= 0) return 1;
    p += n;
    left -= (size_t)n;
  }
  return 0;
}
