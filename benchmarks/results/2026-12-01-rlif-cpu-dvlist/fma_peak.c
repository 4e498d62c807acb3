// FMA throughput of one core: 8 independent chains of AVX2 FMAs (more chains spill registers).
// gcc -O2 -mavx2 -mfma fma_peak.c -o fma_peak && ./fma_peak   (2026-12-01: 7.28 G FMA/s, 116.5 GFLOP/s)
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
int main(){
  __m256 c[8]; for(int i=0;i<8;i++) c[i]=_mm256_set1_ps(i*0.001f);
  __m256 a=_mm256_set1_ps(0.9999f), b=_mm256_set1_ps(0.0001f);
  long n=400000000L/8;
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  for(long k=0;k<n;k++){
#pragma GCC unroll 8
    for(int i=0;i<8;i++) c[i]=_mm256_fmadd_ps(c[i],a,b);
    
  }
  clock_gettime(CLOCK_MONOTONIC,&t1);
  double s=(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)*1e-9;
  float o=0; for(int i=0;i<8;i++) o+=c[i][0];
  printf("%.1f GFLOP/s one core (%.3f G vector FMA/s) %f\n", n*8*16/s*1e-9, n*8/s*1e-9, o);
}
