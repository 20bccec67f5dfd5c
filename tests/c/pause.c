/* The pod sandbox ("pause") program of the CRI tests' sandbox image: sleeps
 * until SIGTERM or SIGINT, then exits 0. Built static (gcc -static) so the
 * image needs nothing else. micrun's shim never runs it (its sandbox is a
 * placeholder); the CRI plugin only needs the image to exist locally. */
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    while (!stop)
        pause();
    return 0;
}
