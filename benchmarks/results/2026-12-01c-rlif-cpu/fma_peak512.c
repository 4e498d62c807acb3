// FMA throughput of one core with AVX-512: 12 independent chains of 512-bit FMAs.
// gcc -O2 -mavx512f fma_peak512.c -o fma_peak512 && ./fma_peak512
// 2026-12-01, Intel Xeon model 207: 179-182 GFLOP/s one core; the AVX2 fma_peak.c of
// ../2026-12-01-rlif-cpu-dvlist: 88-93 GFLOP/s on the same core.
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
int main(){
  __m512 c[12]; for(int i=0;i<12;i++) c[i]=_mm512_set1_ps(i*0.001f);
  __m512 a=_mm512_set1_ps(0.9999f), b=_mm512_set1_ps(0.0001f);
  long n=400000000L/12;
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  for(long k=0;k<n;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++) c[i]=_mm512_fmadd_ps(c[i],a,b);
  }
  clock_gettime(CLOCK_MONOTONIC,&t1);
  double s=(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)*1e-9;
  float o=0; for(int i=0;i<12;i++) o+=c[i][0];
  printf("AVX512: %.1f GFLOP/s one core (%.3f G vector FMA/s) %f\n", n*12*32/s*1e-9, n*12/s*1e-9, o);
}
