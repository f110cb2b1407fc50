/* A stand-in for Windows' bcryptprimitives.dll, which wine 8.0 lacks: Rust's std imports
   ProcessPrng from it (for HashMap's RandomState, among others), and a program without it
   dies before main with c0000135. This one export answers from RtlGenRandom
   (advapi32's SystemFunction036). Built by .ci/windows-env with mingw. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG: large requests go in pieces. */
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
