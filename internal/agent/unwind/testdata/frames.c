#ifdef BOTH_SECTIONS
/* Call frame information in both sections, as some toolchains write it. */
__asm__(".cfi_sections .eh_frame, .debug_frame");
#endif
#include <stdio.h>
#include <stdlib.h>
#include <alloca.h>
#include <string.h>
__attribute__((noinline)) int leaf(int x){ return x*3+1; }
__attribute__((noinline)) int rec(int n){ if(n<=0) return leaf(n); return rec(n-1)+leaf(n); }
__attribute__((noinline)) int big(int n){ volatile char buf[8192]; memset((char*)buf,n,sizeof buf); return buf[n&1023]+rec(n); }
__attribute__((noinline)) int dyn(int n){ char *p = alloca(n); memset(p, 1, n); return p[n/2]+big(n); }
__attribute__((noinline, aligned(64))) int aligned(int n){ double __attribute__((aligned(64))) v[8]; for(int i=0;i<8;i++) v[i]=i*n; return (int)v[n&7]+dyn(n+16); }
/* Realigns its stack and allocates on it: GCC keeps the CFA in R10 for a
   while, then in a CFA expression. */
__attribute__((noinline)) int realign(int n){ char buf[64] __attribute__((aligned(64))); char *p = alloca(n); memset(buf, n, sizeof buf); memset(p, n, n); __asm__ volatile("" :: "r"(buf), "r"(p) : "memory"); return buf[n&63]+p[n/2]+aligned(n); }
int main(int argc, char **argv){ printf("%d\n", realign(argc)); return 0; }
