/* The pod sandbox's process (what registry.k8s.io/pause runs): holds the pod's namespaces, reaps
 * zombies (it is PID 1 when the pod shares its PID namespace) and exits on SIGINT/SIGTERM.
 * Built static by hack/install-localkube.sh and imported into containerd under the name its
 * sandbox_image setting gives (no registry is reachable here). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { _exit(sig == SIGINT || sig == SIGTERM ? 0 : 2); }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 || sigaction(SIGCHLD, &child, NULL) < 0) return 1;
  for (;;) pause();
}
