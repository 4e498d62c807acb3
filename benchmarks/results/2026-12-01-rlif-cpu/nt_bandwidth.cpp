// Streaming-store bandwidth in the rlif forward's write pattern (results README, "Bandwidth").
// g++ -O2 -mavx2 -mfma -fopenmp nt_bandwidth.cpp -o nt && ./nt MODE THREADS
// MODE 0: per step, 8 rows x 2 arrays of 400-byte rows (6 lines each); 1: each row's whole
// sequence at once; k > 1: k steps per row at a time. Prints the last 5 of 15 repetitions and the
// OpenMP team size.
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <omp.h>
static void line(float* d, const float* s){ _mm256_stream_ps(d,_mm256_loadu_ps(s)); _mm256_stream_ps(d+8,_mm256_loadu_ps(s+8)); }
int main(int argc,char**argv){
  const int B=250,T=100,N=100; const size_t n=(size_t)B*T*N;
  float* S=(float*)aligned_alloc(64,n*4); float* U=(float*)aligned_alloc(64,n*4);
  memset(S,0,n*4); memset(U,0,n*4);
  alignas(64) float src[4096]; for(int i=0;i<4096;i++) src[i]=i;
  int stage=atoi(argv[1]);
  for(int rep=0;rep<15;rep++){
    auto t0=std::chrono::steady_clock::now();
    #pragma omp parallel for schedule(static) num_threads(atoi(argv[2]))
    for(int tile=0;tile<32;tile++){
      int b0=tile*8;
      if(stage==0){ // interleaved: per step, per row 400B into S and U (lines approximated: 6 lines + tail)
        for(int t=0;t<T;t++) for(int r=0;r<8&&b0+r<B;r++){
          size_t off=((size_t)(b0+r)*T+t)*N; // not line aligned; approximate with aligned down
          float* ds=S+(off&~(size_t)15); float* du=U+(off&~(size_t)15);
          for(int q=0;q<6;q++){ line(ds+16*q,src+16*q); line(du+16*q,src+16*q);} }
      } else if(stage==1){ // sequential per row: all T steps of a row at once
        for(int r=0;r<8&&b0+r<B;r++){ size_t off=(size_t)(b0+r)*T*N; 
          for(size_t q=0;q<(size_t)T*N;q+=16){ line(S+off+q,src+(q&2047)); line(U+off+q,src+(q&2047)); } }
      } else { // chunk: every `stage` steps, flush stage steps per row
        for(int t=0;t<T;t+=stage) for(int r=0;r<8&&b0+r<B;r++){
          size_t off=((size_t)(b0+r)*T+t)*N & ~(size_t)15; size_t len=(size_t)stage*N;
          for(size_t q=0;q<len;q+=16){ line(S+off+q,src+(q&2047)); line(U+off+q,src+(q&2047)); } }
      }
    }
    _mm_sfence();
    if(rep==14){ _Pragma("omp parallel num_threads(atoi(argv[2]))") { _Pragma("omp single") printf("team %d\n", omp_get_num_threads()); } }
    double ms=std::chrono::duration<double,std::milli>(std::chrono::steady_clock::now()-t0).count();
    if(rep>=10) printf("stage %d: %.3f ms  %.1f GB/s\n",stage,ms,2*n*4/ms/1e6);
  }
}
