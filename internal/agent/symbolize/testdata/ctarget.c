// A target for the symbolizer tests: it prints where its functions are, and where a
// page of anonymous executable memory is (as a JIT compiler has), then waits. A line
// "load" on stdin makes it dlopen libm and print where fetestexcept is; end of input
// makes it exit.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef KPROF_VARIANT
#define KPROF_VARIANT 1
#endif
/* -DKPROF_VARIANT=n gives another build ID. */
__attribute__((used)) static const int kprof_variant = KPROF_VARIANT;

static void *volatile ret_in_beta;

__attribute__((noinline)) void kprof_alpha(void) {
	ret_in_beta = __builtin_return_address(0);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void kprof_beta(void) {
	kprof_alpha();
	__asm__ volatile("" ::: "memory"); /* no tail call: the return address stays in kprof_beta */
}

int main(void) {
	char line[64];
	kprof_beta();
	printf("entry %p kprof_alpha\n", (void *)kprof_alpha);
	printf("ret %p kprof_beta\n", ret_in_beta);
	printf("libc %p qsort\n", (void *)qsort);
	void *anon = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon != MAP_FAILED)
		printf("anon %p kprof_jitted\n", anon);
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin) != NULL) {
		if (strncmp(line, "load", 4) == 0) {
			void *h = dlopen("libm.so.6", RTLD_NOW);
			void *f = h ? dlsym(h, "fetestexcept") : NULL;
			printf("dlopen %p fetestexcept\n", f);
			fflush(stdout);
		}
	}
	return 0;
}
