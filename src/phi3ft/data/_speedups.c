/*
 * phi3ft.data._speedups: the validator's per-byte work in C (optional; scan.py and validate.py have the
 * same logic in Python and use it when this module is missing or PHI3FT_PURE_PYTHON=1).
 *
 *   line_scan(body: bytes) -> (gates, key)
 *       gates: exactly scan.line_gates_py(body); key: exactly scan.dup_key_py(body, ..., False), or -1 when
 *       the line has a backslash-u escape (G_UESCAPE: the Python side re-serialises such lines first).
 *       With AVX2 (checked at import; simd(False) turns it off for tests) one 32-byte-a-step pass, and
 *       CRC-32 by carry-less multiplication; else a portable byte-table pass and memchr loops.
 *   case_counts(text: str) -> (upper, lower)
 *       exactly scan.case_counts_py(text): characters that str.lower() / str.upper() change.
 *   set_odd_case(codepoints: bytes, lower_changes: bytes, upper_changes: bytes) -> None
 *       the BMP characters whose lower() or upper() is not one character (UCS-4 little-endian), with
 *       whether lower() / upper() changes each (one byte per character); before then such characters
 *       make case_counts return None. Also builds the case table of every BMP character.
 *   count_newlines(fd, start, end) -> int (POSIX builds)
 *   Walker: the record walk of valid records (walk), the answer statistics (answer, take), the records'
 *       bookkeeping (record, take_records) and the line loop over a block of the file (configure, scan).
 *
 * tests/unit/test_data_speedups.py checks each against the Python code (fuzzed lines with and without
 * AVX2, every code point, whole reports with and without the extension).
 */
#define _GNU_SOURCE 1
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#ifndef _WIN32
#include <unistd.h>
#define HAVE_PREAD 1
#endif

/* must match scan.py */
#define G_SPECIAL 1
#define G_CONTROL 2
#define G_SECRET 4
#define G_EMAIL 8
#define G_PHONE 16
#define G_CARD 32
#define G_IBAN 64
#define G_ALL 127
#define G_UESCAPE 128

/* trigger bytes seen on the line (first pass), looked at closely in the second */
#define S_BACKSLASH 1u
#define S_LT 2u
#define S_DEL 4u
#define S_AT 8u
#define S_PLUS 16u
#define S_EQ 32u
#define S_DASH 64u
#define S_UNDERSCORE 128u
#define S_A 256u

static uint32_t crc_table[8][256];
static unsigned char keep_tab[256]; /* 0: deleted before hashing (" \t\n\r\\ntrf"), 1: hashed */
static unsigned char digit_tab[256];
static unsigned char upper_tab[256];
static unsigned char sep_tab[256]; /* space or dash */
static unsigned char class_tab[256]; /* 1 digit, 2 A-Z, 0 other */
static uint16_t seen_tab[256];
/* bit 0 keep_tab, bit 1 digit_tab, bits 8-23 seen_tab: one load a byte in line_scan */
static uint32_t byte_tab[256];

static void init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
    for (int i = 0; i < 256; i++) {
        keep_tab[i] = 1;
        digit_tab[i] = (i >= '0' && i <= '9');
        upper_tab[i] = (i >= 'A' && i <= 'Z');
        sep_tab[i] = (i == ' ' || i == '-');
        class_tab[i] = (unsigned char)(digit_tab[i] | upper_tab[i] << 1);
    }
    const char *deleted = " \t\n\r\\ntrf";
    for (const char *d = deleted; *d; d++)
        keep_tab[(unsigned char)*d] = 0;
    seen_tab['\\'] = S_BACKSLASH;
    seen_tab['<'] = S_LT;
    seen_tab[0x7f] = S_DEL;
    seen_tab['@'] = S_AT;
    seen_tab['+'] = S_PLUS;
    seen_tab['='] = S_EQ;
    seen_tab['-'] = S_DASH;
    seen_tab['_'] = S_UNDERSCORE;
    seen_tab['A'] = S_A;
    for (int i = 0; i < 256; i++)
        byte_tab[i] = keep_tab[i] | (uint32_t)digit_tab[i] << 1 | (uint32_t)seen_tab[i] << 8;
}

static inline uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* zlib.crc32 (CRC-32/ISO-HDLC), slicing by 8 */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n >= 8) {
        uint32_t a = le32(p) ^ crc, b = le32(p + 4);
        crc = crc_table[7][a & 0xFF] ^ crc_table[6][(a >> 8) & 0xFF] ^ crc_table[5][(a >> 16) & 0xFF] ^
              crc_table[4][a >> 24] ^ crc_table[3][b & 0xFF] ^ crc_table[2][(b >> 8) & 0xFF] ^
              crc_table[1][(b >> 16) & 0xFF] ^ crc_table[0][b >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static int has_substring(const unsigned char *p, Py_ssize_t n, const char *needle, size_t m)
{
    if ((size_t)n < m)
        return 0;
#if defined(__GLIBC__)
    return memmem(p, (size_t)n, needle, m) != NULL;
#endif
    const unsigned char *end = p + n - m + 1;
    const unsigned char *q = p;
    while (q < end) {
        q = memchr(q, needle[0], (size_t)(end - q));
        if (q == NULL)
            return 0;
        if (memcmp(q, needle, m) == 0)
            return 1;
        q++;
    }
    return 0;
}

/* Bit Twiddling Hacks' hasbetween: is some byte of x in ('0' - 1, '9' + 1), i.e. an ASCII digit? */
#define ONES 0x0101010101010101ULL
static inline uint64_t has_digit(uint64_t x)
{
    uint64_t low7 = x & (ONES * 127);
    return ((ONES * (127 + ':') - low7) & ~x & (low7 + ONES * (127 - '/'))) & (ONES * 128);
}

/* card: 13 ASCII digits with at most one space or dash between two of them (scan.py's D(?:s?D){12});
 * iban: two A-Z then two digits ("UUDD"). Skips 8 bytes at a time to the next word with a digit. */
static void digit_runs(const unsigned char *p, Py_ssize_t n, int want_card, int *card, int *iban)
{
    Py_ssize_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            if (has_digit(x))
                break;
            i += 8;
        }
        while (i < n && !digit_tab[p[i]])
            i++;
        if (i >= n)
            return;
        /* a run starting at digit p[i] */
        if (!*iban && i >= 2 && i + 1 < n && digit_tab[p[i + 1]] && upper_tab[p[i - 1]] && upper_tab[p[i - 2]])
            *iban = 1;
        int run = 0;
        while (i < n) {
            if (digit_tab[p[i]]) {
                run++;
                i++;
            } else if (sep_tab[p[i]] && i + 1 < n && digit_tab[p[i + 1]]) {
                i++;
            } else {
                break;
            }
        }
        if (want_card && run >= 13)
            *card = 1;
        if (*iban && (*card || !want_card))
            return;
    }
}

/* The literal tests of scan.line_gates_py, keyed on the byte that triggers each: both scans run them at
 * every such byte (the portable one from memchr loops, the AVX2 one from compare masks). */
typedef struct {
    int uescape, esc_ascii, esc_ctrl, phone, secret;
} Hits;

static inline void hit_backslash(const unsigned char *p, Py_ssize_t n, Py_ssize_t i, Hits *h)
{
    if (i + 1 >= n)
        return;
    unsigned char e = p[i + 1];
    if (e == 'u') {
        h->uescape = 1;
        if (n - i >= 5 && p[i + 2] == '0' && p[i + 3] == '0' && p[i + 4] >= '0' && p[i + 4] <= '7')
            h->esc_ascii = 1;
    } else if (e == '/') {
        h->esc_ascii = 1;
    } else if (e == 'b' || e == 'f') {
        h->esc_ctrl = 1;
    }
}

static inline int hit_plus(const unsigned char *p, Py_ssize_t n, Py_ssize_t i)
{
    if (i + 1 >= n)
        return 0;
    unsigned char e = p[i + 1];
    return (e >= '0' && e <= '9') || e == '\\' || e >= 0x80;
}

/* the literal secret tests of secret_possible at one trigger byte p[i] */
static inline int secret_at(const unsigned char *p, Py_ssize_t n, Py_ssize_t i)
{
    switch (p[i]) {
    case '=':
        return i >= 3 && (memcmp(p + i - 3, "Key", 3) == 0 || memcmp(p + i - 3, "ure", 3) == 0 ||
                          memcmp(p + i - 3, "sig", 3) == 0);
    case '-':
        return (i >= 2 && p[i - 2] == 's' && p[i - 1] == 'k') ||
               (i >= 4 && p[i - 4] == 'x' && p[i - 3] == 'o' && p[i - 2] == 'x') ||
               (n - i >= 10 && memcmp(p + i, "-----BEGIN", 10) == 0);
    case '_':
        return (i >= 3 && p[i - 3] == 'g' && p[i - 2] == 'h' && p[i - 1] && strchr("pousr", p[i - 1])) ||
               (i >= 10 && memcmp(p + i - 10, "github_pat", 10) == 0);
    case 'A':
        return n - i >= 4 && (p[i + 1] == 'K' || p[i + 1] == 'S') && p[i + 2] == 'I' && p[i + 3] == 'A';
    case 'e':
        return n - i >= 5 && memcmp(p + i, "earer", 5) == 0;
    default:
        return 0;
    }
}

/* The secret pre-filter of scan.line_gates_py: literal necessary conditions of scan.SECRETS. */
static int secret_possible(const unsigned char *p, Py_ssize_t n, unsigned seen)
{
    static const struct {
        unsigned bit;
        char c;
    } triggers[] = {{S_EQ, '='}, {S_DASH, '-'}, {S_UNDERSCORE, '_'}, {S_A, 'A'}};
    for (size_t t = 0; t < sizeof triggers / sizeof triggers[0]; t++) {
        if (!(seen & triggers[t].bit))
            continue;
        for (const unsigned char *q = memchr(p, triggers[t].c, (size_t)n); q != NULL;
             q = q + 1 < p + n ? memchr(q + 1, triggers[t].c, (size_t)(p + n - q - 1)) : NULL)
            if (secret_at(p, n, q - p))
                return 1;
    }
    if (has_substring(p, n, "earer", 5))
        return 1;
    if ((seen & S_AT) && has_substring(p, n, "://", 3))
        return 1;
    return 0;
}

/* ---- the same scan with AVX2 (x86-64; chosen at import when the CPU has it) -------------------------
 * 32 bytes a step: the hashed bytes are compacted with a shuffle table (8 bytes at a time), digits and
 * trigger bytes are counted from compare masks, and the literal tests run at each trigger byte found (the
 * same tests as the memchr loops of the portable scan, keyed on the same byte), all in one pass. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_PATH 1
#include <immintrin.h>

/* zlib.crc32 with carry-less multiplication (folding 4 x 128 bits, then Barrett reduction): the method
 * and constants of Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ" for the
 * bit-reflected CRC-32 polynomial, as zlib builds use it; n >= 64, a multiple of 16; crc pre-inverted. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_clmul(const unsigned char *buf, size_t len,
                                                                      uint32_t crc)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
    const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8;
    x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
    x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
    x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
    x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    buf += 64;
    len -= 64;
    while (len >= 64) {
        x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
        x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
        x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), _mm_loadu_si128((const __m128i *)(buf + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), _mm_loadu_si128((const __m128i *)(buf + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), _mm_loadu_si128((const __m128i *)(buf + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), _mm_loadu_si128((const __m128i *)(buf + 0x30)));
        buf += 64;
        len -= 64;
    }
    /* fold the four into one */
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
    while (len >= 16) {
        x2 = _mm_loadu_si128((const __m128i *)buf);
        x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
        buf += 16;
        len -= 16;
    }
    /* 128 bits to 64 */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_and_si128(x1, mask32);
    x1 = _mm_clmulepi64_si128(x1, k5k0, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    /* Barrett reduction to 32 bits */
    x2 = _mm_and_si128(x1, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x10);
    x2 = _mm_and_si128(x2, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    (void)x0;
    return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int use_clmul;

static uint32_t crc32_any(uint32_t crc, const unsigned char *p, size_t n)
{
    if (use_clmul && n >= 64) {
        size_t m = n & ~(size_t)15;
        crc = ~crc32_clmul(p, m, ~crc);
        p += m;
        n -= m;
    }
    return crc32_update(crc, p, n);
}

static uint64_t shuf_tab[256]; /* byte indices of the set bits of the index, then 0x80 (zero) */
static int use_simd;

static void init_simd(void)
{
    for (int m = 0; m < 256; m++) {
        uint64_t v = 0;
        int k = 0;
        for (int b = 0; b < 8; b++)
            if (m >> b & 1)
                v |= (uint64_t)b << (8 * k++);
        for (; k < 8; k++)
            v |= (uint64_t)0x80 << (8 * k);
        shuf_tab[m] = v;
    }
    __builtin_cpu_init();
    use_simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    use_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

__attribute__((target("avx2,popcnt"))) static inline void compact16(__m128i x, uint32_t m16, unsigned char *out,
                                                                    size_t *k)
{
    uint32_t m0 = m16 & 0xFF, m1 = m16 >> 8;
    __m128i sh = _mm_set_epi64x((long long)(shuf_tab[m1] | 0x0808080808080808ULL), (long long)shuf_tab[m0]);
    __m128i c = _mm_shuffle_epi8(x, sh);
    _mm_storel_epi64((__m128i *)(out + *k), c);
    *k += (size_t)__builtin_popcount(m0);
    _mm_storeh_pd((double *)(out + *k), _mm_castsi128_pd(c));
    *k += (size_t)__builtin_popcount(m1);
}

/* the bytes of v that the key deletes (" \t\n\r\\ntrf"; bs: v == '\\') */
__attribute__((target("avx2"))) static inline __m256i deleted_bytes(__m256i v, __m256i bs)
{
#define EQK(c) _mm256_cmpeq_epi8(v, _mm256_set1_epi8((char)(c)))
    return _mm256_or_si256(
        _mm256_or_si256(_mm256_or_si256(EQK(' '), EQK('\t')), _mm256_or_si256(EQK('\n'), EQK('\r'))),
        _mm256_or_si256(_mm256_or_si256(bs, EQK('n')), _mm256_or_si256(_mm256_or_si256(EQK('t'), EQK('r')), EQK('f'))));
#undef EQK
}

/* append the kept bytes of one 32-byte step to buf; CRC-32 over buf once it holds 4 kB */
__attribute__((target("avx2,popcnt"))) static inline void keep_step(__m256i v, uint32_t keep, unsigned char *buf,
                                                                    size_t *k, uint32_t *crc, uint64_t *kept)
{
    compact16(_mm256_castsi256_si128(v), keep & 0xFFFF, buf, k);
    compact16(_mm256_extracti128_si256(v, 1), keep >> 16, buf, k);
    if (*k >= 4096) {
        *crc = crc32_any(*crc, buf, *k);
        *kept += *k;
        *k = 0;
    }
}

/* digit_runs with AVX2: IBAN (two A-Z then two digits) exactly from masks; for cards, a run of 13
 * "connected" bytes (a digit, or a space / dash between two digits) is necessary, so only a line with one
 * goes through the exact scalar digit_runs. */
__attribute__((target("avx2,popcnt"))) static void digit_gates_avx2(const unsigned char *p, Py_ssize_t n,
                                                                   int want_card, int *card, int *iban)
{
    Py_ssize_t i = 0;
    int carry = 0, cand = 0;
    const __m256i nine = _mm256_set1_epi8(9), z25 = _mm256_set1_epi8(25);
    for (; i + 40 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i t = _mm256_sub_epi8(v, _mm256_set1_epi8('0'));
        uint32_t d = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(t, nine), t));
        if (!*iban) { /* (even with no digit here: a pattern may end in the next step) */
            __m256i tu = _mm256_sub_epi8(v, _mm256_set1_epi8('A'));
            uint32_t u = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(tu, z25), tu));
            if (u & (u >> 1) & (d >> 2) & (d >> 3))
                *iban = 1;
            for (int j = 29; j < 32 && !*iban; j++) /* patterns that end in the next step */
                if ((u >> j & 1) && upper_tab[p[i + j + 1]] && digit_tab[p[i + j + 2]] && digit_tab[p[i + j + 3]])
                    *iban = 1;
        }
        if (d == 0) {
            carry = 0;
            continue;
        }
        if (want_card && !cand) {
            uint32_t sep = (uint32_t)_mm256_movemask_epi8(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(' ')), _mm256_cmpeq_epi8(v, _mm256_set1_epi8('-'))));
            uint32_t prev = i > 0 ? digit_tab[p[i - 1]] : 0, next = digit_tab[p[i + 32]];
            uint32_t c = d | (sep & ((d >> 1) | next << 31) & ((d << 1) | prev));
            int lead = c == 0xFFFFFFFFu ? 32 : __builtin_ctz(~c);
            uint32_t r = c & (c >> 1);
            r &= r >> 2;
            r &= r >> 4;
            r &= r >> 5; /* bit k: bytes k .. k+12 all connected */
            if (r || carry + lead >= 13)
                cand = 1;
            carry = c == 0xFFFFFFFFu ? carry + 32 : __builtin_clz(~c);
        }
        if (*iban && (cand || !want_card))
            break;
    }
    if (!(*iban && (cand || !want_card))) {
        for (; i < n; i++) {
            unsigned char c = p[i];
            if (!*iban && i + 3 < n && upper_tab[c] && upper_tab[p[i + 1]] && digit_tab[p[i + 2]] &&
                digit_tab[p[i + 3]])
                *iban = 1;
            if (want_card && !cand) {
                int conn = digit_tab[c] || (sep_tab[c] && i > 0 && digit_tab[p[i - 1]] && i + 1 < n && digit_tab[p[i + 1]]);
                carry = conn ? carry + 1 : 0;
                if (carry >= 13)
                    cand = 1;
            }
        }
    }
    if (cand) {
        int exact_iban = 0;
        digit_runs(p, n, 1, card, &exact_iban);
    }
}

/* escaped_key's compaction 32 bytes a step (no backslash-u000b in the bytes: the caller checks) */
__attribute__((target("avx2,popcnt"))) static long long plain_key_avx2(const unsigned char *p, Py_ssize_t n)
{
    unsigned char buf[4096 + 64];
    size_t k = 0;
    uint64_t kept = 0;
    uint32_t crc = 0;
    Py_ssize_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i gone = deleted_bytes(v, _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\')));
        keep_step(v, ~(uint32_t)_mm256_movemask_epi8(gone), buf, &k, &crc, &kept);
    }
    for (; i < n; i++) {
        buf[k] = p[i];
        k += keep_tab[p[i]];
    }
    crc = crc32_any(crc, buf, k);
    kept += k;
    return (long long)(kept << 32 | crc);
}

#define EQ(v, c) _mm256_cmpeq_epi8((v), _mm256_set1_epi8((char)(c)))
#define MASK(x) ((uint32_t)_mm256_movemask_epi8(x))

__attribute__((target("avx2,popcnt"))) static int line_scan_avx2(const unsigned char *p, Py_ssize_t n,
                                                                long long *key_out)
{
    unsigned char buf[4096 + 64];
    size_t k = 0;
    uint64_t kept = 0;
    uint32_t crc = 0;
    Py_ssize_t digits = 0, i = 0;
    uint32_t lt = 0, del = 0, at = 0;
    Hits h = {0, 0, 0, 0, 0};
    const __m256i nine = _mm256_set1_epi8(9);
    for (; i + 40 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i bs = EQ(v, '\\');
        __m256i gone = deleted_bytes(v, bs);
        __m256i t = _mm256_sub_epi8(v, _mm256_set1_epi8('0'));
        digits += __builtin_popcount(MASK(_mm256_cmpeq_epi8(_mm256_min_epu8(t, nine), t)));
        lt |= MASK(EQ(v, '<'));
        del |= MASK(EQ(v, 0x7f));
        at |= MASK(EQ(v, '@'));
        uint32_t m = MASK(bs);
        if (m) { /* hit_backslash at every backslash of the step, from masks of the bytes after it */
            __m256i v1 = _mm256_loadu_si256((const __m256i *)(p + i + 1));
            __m256i u = _mm256_and_si256(bs, EQ(v1, 'u'));
            h.uescape |= MASK(u) != 0;
            if (!h.esc_ascii) {
                __m256i t4 = _mm256_sub_epi8(_mm256_loadu_si256((const __m256i *)(p + i + 4)), _mm256_set1_epi8('0'));
                __m256i oct = _mm256_cmpeq_epi8(_mm256_min_epu8(t4, _mm256_set1_epi8(7)), t4);
                __m256i ascii = _mm256_and_si256(
                    _mm256_and_si256(u, oct), _mm256_and_si256(EQ(_mm256_loadu_si256((const __m256i *)(p + i + 2)), '0'),
                                                               EQ(_mm256_loadu_si256((const __m256i *)(p + i + 3)), '0')));
                h.esc_ascii |= MASK(_mm256_or_si256(ascii, _mm256_and_si256(bs, EQ(v1, '/')))) != 0;
            }
            h.esc_ctrl |= MASK(_mm256_and_si256(bs, _mm256_or_si256(EQ(v1, 'b'), EQ(v1, 'f')))) != 0;
        }
        if (!h.phone) {
            m = MASK(EQ(v, '+'));
            while (m) {
                if (hit_plus(p, n, i + __builtin_ctz(m))) {
                    h.phone = 1;
                    break;
                }
                m &= m - 1;
            }
        }
        if (!h.secret) {
            __m256i r4 = EQ(_mm256_loadu_si256((const __m256i *)(p + i + 4)), 'r');
            m = MASK(_mm256_or_si256(_mm256_or_si256(EQ(v, '='), EQ(v, '-')),
                                     _mm256_or_si256(_mm256_or_si256(EQ(v, '_'), EQ(v, 'A')),
                                                     _mm256_and_si256(EQ(v, 'e'), r4))));
            while (m) {
                if (secret_at(p, n, i + __builtin_ctz(m))) {
                    h.secret = 1;
                    break;
                }
                m &= m - 1;
            }
        }
        keep_step(v, ~MASK(gone), buf, &k, &crc, &kept);
    }
    for (; i < n; i++) {
        unsigned char c = p[i];
        uint32_t tb = byte_tab[c];
        buf[k] = c;
        k += tb & 1u;
        digits += (tb >> 1) & 1u;
        lt |= c == '<';
        del |= c == 0x7f;
        at |= c == '@';
        if (c == '\\')
            hit_backslash(p, n, i, &h);
        else if (c == '+' && !h.phone)
            h.phone = hit_plus(p, n, i);
        else if (!h.secret && (c == '=' || c == '-' || c == '_' || c == 'A' || c == 'e'))
            h.secret = secret_at(p, n, i);
    }
    crc = crc32_any(crc, buf, k);
    kept += k;
    *key_out = h.uescape ? -1LL : (long long)(kept << 32 | crc);
    int gates = h.uescape ? G_UESCAPE : 0;
    if (h.esc_ascii)
        return G_ALL | gates;
    if (h.esc_ctrl || del)
        gates |= G_CONTROL;
    if (lt)
        gates |= G_SPECIAL;
    if (at)
        gates |= G_EMAIL;
    if (h.phone)
        gates |= G_PHONE;
    if (digits >= 2) {
        int card = 0, iban = 0;
        digit_gates_avx2(p, n, digits >= 13, &card, &iban);
        if (card)
            gates |= G_CARD;
        if (iban)
            gates |= G_IBAN;
    }
    if (h.secret || (at && has_substring(p, n, "://", 3)))
        gates |= G_SECRET;
    return gates;
}
#undef EQ
#undef MASK
#endif

static uint32_t crc32_best(uint32_t crc, const unsigned char *p, size_t n)
{
#ifdef HAVE_AVX2_PATH
    return crc32_any(crc, p, n);
#else
    return crc32_update(crc, p, n);
#endif
}

/* scan.dup_key of a line with a backslash-u escape, from orjson.dumps of its record: the bytes without
 * each backslash-u000b (left to right, as bytes.replace) and without the deleted bytes, CRC-32 + length */
static long long escaped_key(const unsigned char *p, Py_ssize_t n)
{
#ifdef HAVE_AVX2_PATH
    if (use_simd && !has_substring(p, n, "\\u000b", 6))
        return plain_key_avx2(p, n);
#endif
    unsigned char buf[4096 + 8];
    size_t k = 0;
    uint64_t kept = 0;
    uint32_t crc = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\\' && n - i >= 6 && memcmp(p + i + 1, "u000b", 5) == 0) {
            i += 5;
            continue;
        }
        buf[k] = c;
        k += keep_tab[c];
        if (k >= 4096) {
            crc = crc32_best(crc, buf, k);
            kept += k;
            k = 0;
        }
    }
    crc = crc32_best(crc, buf, k);
    kept += k;
    return (long long)(kept << 32 | crc);
}

/* (gates, key) of one line body: scan.line_scan_py; *key_out is -1 with a backslash-u escape */
static int line_scan_core(const unsigned char *p, Py_ssize_t n, long long *key_out)
{
#ifdef HAVE_AVX2_PATH
    if (use_simd && n >= 40)
        return line_scan_avx2(p, n, key_out);
#endif
    /* pass 1: the hashed bytes (CRC-32 + length), trigger bytes and digits: one table load a byte */
    unsigned char buf[4096 + 8] = {0};
    size_t k = 0;
    uint64_t kept = 0;
    uint32_t crc = 0;
    uint32_t seen = 0;
    Py_ssize_t digits = 0, i = 0;
#define STEP(j)                                                                                            \
    do {                                                                                                   \
        unsigned char c_ = p[i + (j)];                                                                     \
        uint32_t t_ = byte_tab[c_];                                                                        \
        buf[k] = c_;                                                                                       \
        k += t_ & 1u;                                                                                      \
        digits += (t_ >> 1) & 1u;                                                                          \
        seen |= t_;                                                                                        \
    } while (0)
    for (; i + 8 <= n; i += 8) {
        STEP(0); STEP(1); STEP(2); STEP(3); STEP(4); STEP(5); STEP(6); STEP(7);
        if (k >= 4096) {
            crc = crc32_update(crc, buf, k);
            kept += k;
            k = 0;
        }
    }
    for (; i < n; i++)
        STEP(0);
#undef STEP
    crc = crc32_update(crc, buf, k);
    kept += k;
    seen >>= 8;
    int card = 0, iban = 0;
    if (digits >= 2)
        digit_runs(p, n, digits >= 13, &card, &iban);

    /* pass 2: the escapes and the literal tests of scan.line_gates_py, only for bytes that occur */
    int gates = 0;
    Hits h = {0, 0, 0, 0, 0};
    if (seen & S_BACKSLASH)
        for (const unsigned char *q = memchr(p, '\\', (size_t)n); q != NULL;
             q = q + 1 < p + n ? memchr(q + 1, '\\', (size_t)(p + n - q - 1)) : NULL)
            hit_backslash(p, n, q - p, &h);
    int uescape = h.uescape;
    if (uescape)
        gates = G_UESCAPE;
    *key_out = uescape ? -1LL : (long long)(kept << 32 | crc);
    if (h.esc_ascii)
        return G_ALL | gates;
    if (h.esc_ctrl)
        gates |= G_CONTROL;
    if (seen & S_LT)
        gates |= G_SPECIAL;
    if (seen & S_DEL)
        gates |= G_CONTROL;
    if (seen & S_AT)
        gates |= G_EMAIL;
    if (seen & S_PLUS)
        for (const unsigned char *q = memchr(p, '+', (size_t)n); q != NULL;
             q = q + 1 < p + n ? memchr(q + 1, '+', (size_t)(p + n - q - 1)) : NULL)
            if (hit_plus(p, n, q - p)) {
                gates |= G_PHONE;
                break;
            }
    if (card)
        gates |= G_CARD;
    if (iban)
        gates |= G_IBAN;
    if (secret_possible(p, n, seen))
        gates |= G_SECRET;
    return gates;
}

static PyObject *line_scan(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "line_scan() takes bytes");
        return NULL;
    }
    long long key;
    int gates = line_scan_core((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), &key);
    return Py_BuildValue("(iL)", gates, key);
}

/* ---- Q03 casing ------------------------------------------------------------------------------------ */
static unsigned char *odd_bits; /* 65536 bits: BMP characters whose lower() or upper() is not 1 char */
static unsigned char *odd_lower; /* 65536 bits: lower() changes it (for odd characters) */
static unsigned char *odd_upper;
/* every BMP character once the odd table is set: bit 0 lower() changes it, bit 1 upper() changes it */
static unsigned char *case_tab;

#if defined(HAVE_AVX2_PATH)
/* ASCII letters of s[0:*done] (32 bytes a step, stopping before the first step with a non-ASCII byte) */
__attribute__((target("avx2,popcnt"))) static void ascii_case_avx2(const unsigned char *s, Py_ssize_t n,
                                                                    Py_ssize_t *done, Py_ssize_t *up,
                                                                    Py_ssize_t *low)
{
    Py_ssize_t i = 0, u = 0, l = 0;
    const __m256i a = _mm256_set1_epi8('A'), za = _mm256_set1_epi8('a'), top = _mm256_set1_epi8(25);
    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + i));
        if (_mm256_movemask_epi8(v))
            break;
        __m256i tu = _mm256_sub_epi8(v, a), tl = _mm256_sub_epi8(v, za);
        u += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(tu, top), tu)));
        l += __builtin_popcount((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(tl, top), tl)));
    }
    *done = i;
    *up += u;
    *low += l;
}
#endif

/* Py_UNICODE_TOLOWER / TOUPPER (deprecated names, still the C API's single-character case mapping) */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static PyObject *set_odd_case(PyObject *self, PyObject *args)
{
    (void)self;
    const char *cps, *lows, *ups;
    Py_ssize_t ncp, nl, nu;
    if (!PyArg_ParseTuple(args, "y#y#y#", &cps, &ncp, &lows, &nl, &ups, &nu))
        return NULL;
    if (ncp % 4 || nl != ncp / 4 || nu != ncp / 4) {
        PyErr_SetString(PyExc_ValueError, "set_odd_case: one flag byte per UCS-4 code point");
        return NULL;
    }
    unsigned char *bits = PyMem_Calloc(3, 8192);
    if (bits == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t j = 0; j < ncp / 4; j++) {
        uint32_t cp = le32((const unsigned char *)cps + 4 * j);
        if (cp > 0xFFFF) {
            PyMem_Free(bits);
            PyErr_SetString(PyExc_ValueError, "set_odd_case: BMP code points only");
            return NULL;
        }
        bits[cp >> 3] |= (unsigned char)(1u << (cp & 7));
        if (lows[j])
            bits[8192 + (cp >> 3)] |= (unsigned char)(1u << (cp & 7));
        if (ups[j])
            bits[16384 + (cp >> 3)] |= (unsigned char)(1u << (cp & 7));
    }
    unsigned char *tab = PyMem_Malloc(65536);
    if (tab == NULL) {
        PyMem_Free(bits);
        return PyErr_NoMemory();
    }
    for (uint32_t c = 0; c < 65536; c++) {
        if (bits[c >> 3] >> (c & 7) & 1)
            tab[c] = (unsigned char)((bits[8192 + (c >> 3)] >> (c & 7) & 1) |
                                     (bits[16384 + (c >> 3)] >> (c & 7) & 1) << 1);
        else
            tab[c] = (unsigned char)((Py_UNICODE_TOLOWER(c) != c) | (Py_UNICODE_TOUPPER(c) != c) << 1);
    }
    PyMem_Free(odd_bits);
    PyMem_Free(case_tab);
    odd_bits = bits;
    odd_lower = bits + 8192;
    odd_upper = bits + 16384;
    case_tab = tab;
    Py_RETURN_NONE;
}

/* (upper, lower) of one str; returns -1 when a BMP character needs the odd table and it is not set yet */
static int count_case(PyObject *text, Py_ssize_t *up_out, Py_ssize_t *low_out)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t up = 0, low = 0, start = 0;
    if (case_tab != NULL && kind != PyUnicode_4BYTE_KIND) { /* table lookups (and AVX2 over ASCII runs) */
        if (kind == PyUnicode_1BYTE_KIND) {
            const unsigned char *s = data;
            Py_ssize_t i = 0;
            while (i < n) {
#if defined(HAVE_AVX2_PATH)
                if (use_simd) {
                    Py_ssize_t done;
                    ascii_case_avx2(s + i, n - i, &done, &up, &low);
                    i += done;
                }
#endif
                Py_ssize_t end = i + 32 < n ? i + 32 : n;
                for (; i < end; i++) {
                    unsigned t = case_tab[s[i]];
                    up += t & 1;
                    low += t >> 1;
                }
            }
        } else {
            const Py_UCS2 *s = data;
            for (Py_ssize_t i = 0; i < n; i++) {
                unsigned t = case_tab[s[i]];
                up += t & 1;
                low += t >> 1;
            }
        }
        *up_out = up;
        *low_out = low;
        return 0;
    }
    if (kind == PyUnicode_1BYTE_KIND) {
        const unsigned char *s = data;
        Py_ssize_t i = 0;
        for (; i < n; i++) {
            unsigned c = s[i];
            if (c >= 0x80)
                break;
            up += (c - 'A' < 26u);
            low += (c - 'a' < 26u);
        }
        start = i;
    }
#define COUNT_LOOP(T)                                                                                      \
    for (Py_ssize_t i = start; i < n; i++) {                                                               \
        Py_UCS4 c = ((const T *)data)[i];                                                                  \
        if (c < 0x80) {                                                                                    \
            up += (c - 'A' < 26u);                                                                         \
            low += (c - 'a' < 26u);                                                                        \
            continue;                                                                                      \
        }                                                                                                  \
        if (c <= 0xFFFF) {                                                                                 \
            if (odd_bits == NULL)                                                                          \
                return -1;                                                                                 \
            if (odd_bits[c >> 3] >> (c & 7) & 1) {                                                         \
                up += odd_lower[c >> 3] >> (c & 7) & 1;                                                    \
                low += odd_upper[c >> 3] >> (c & 7) & 1;                                                   \
                continue;                                                                                  \
            }                                                                                              \
        }                                                                                                  \
        up += (Py_UNICODE_TOLOWER(c) != c);                                                                \
        low += (Py_UNICODE_TOUPPER(c) != c);                                                               \
    }
    if (kind == PyUnicode_1BYTE_KIND) {
        COUNT_LOOP(Py_UCS1)
    } else if (kind == PyUnicode_2BYTE_KIND) {
        COUNT_LOOP(Py_UCS2)
    } else {
        COUNT_LOOP(Py_UCS4)
    }
#undef COUNT_LOOP
    *up_out = up;
    *low_out = low;
    return 0;
}

static PyObject *case_counts(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "case_counts() takes str");
        return NULL;
    }
    Py_ssize_t up, low;
    if (count_case(arg, &up, &low) < 0)
        Py_RETURN_NONE; /* the caller computes the odd characters (set_odd_case) and asks again */
    return Py_BuildValue("(nn)", up, low);
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif


/* ---- the record walk ----------------------------------------------------------------------------------
 * Walker(special_texts, drops_system, common_prefix, common_suffix).walk(obj, check_special, train)
 * returns (messages, characters, has_system) when validate._Validator._check_record would add no finding
 * for the record and every message has a string role and content (the usual, valid record), after adding
 * its assistant answers (train) to the answer statistics; None otherwise, having changed nothing: the
 * caller then runs the Python checks. The caller keeps records with control characters or possible
 * secrets / personal data (line gates) away from it; T09 and the dataset bookkeeping stay in Python.
 * answer(content) adds one answer (the Python path's answers); take() returns and resets
 * (answers, upper, lower, all_same, first, prefix, suffix) as validate._Stats has them.
 */
#define MAX_LINES_SHOWN 64

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

typedef struct {
    PyObject_HEAD
    PyObject *specials;      /* tuple of str */
    int specials_lt;         /* every special text starts with '<' */
    int drops_system;
    PyObject *common_prefix; /* callable (a, b) -> str */
    PyObject *common_suffix;
    Py_ssize_t answers, upper, lower;
    int all_same;
    PyObject *first, *prefix, *suffix; /* NULL: None */
    /* configure() */
    PyObject *loads, *dumps;
    Py_ssize_t t09_chars, max_line;
    int lines_shown;
    /* records not yet taken (take_records) */
    Buf keys, lines, offsets, lengths, messages, chars;
    Py_ssize_t examples, no_system_count;
    int n_no_system;
    uint64_t no_system[MAX_LINES_SHOWN];
} Walker;

static PyObject *k_messages, *k_role, *k_content;

static void Walker_dealloc(Walker *w)
{
    Py_XDECREF(w->specials);
    Py_XDECREF(w->common_prefix);
    Py_XDECREF(w->common_suffix);
    Py_XDECREF(w->first);
    Py_XDECREF(w->prefix);
    Py_XDECREF(w->suffix);
    Py_XDECREF(w->loads);
    Py_XDECREF(w->dumps);
    PyMem_Free(w->keys.p);
    PyMem_Free(w->lines.p);
    PyMem_Free(w->offsets.p);
    PyMem_Free(w->lengths.p);
    PyMem_Free(w->messages.p);
    PyMem_Free(w->chars.p);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static int Walker_init(Walker *w, PyObject *args, PyObject *kwds)
{
    PyObject *specials, *cp, *cs;
    int drops;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "O!pOO", &PyTuple_Type, &specials, &drops, &cp, &cs))
        return -1;
    w->specials_lt = 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(specials); i++) {
        PyObject *t = PyTuple_GET_ITEM(specials, i);
        if (!PyUnicode_Check(t) || PyUnicode_GET_LENGTH(t) == 0) {
            PyErr_SetString(PyExc_TypeError, "special texts must be non-empty str");
            return -1;
        }
        if (PyUnicode_READ_CHAR(t, 0) != '<')
            w->specials_lt = 0;
    }
    Py_INCREF(specials);
    Py_XSETREF(w->specials, specials);
    Py_INCREF(cp);
    Py_XSETREF(w->common_prefix, cp);
    Py_INCREF(cs);
    Py_XSETREF(w->common_suffix, cs);
    w->drops_system = drops;
    w->all_same = 1;
    return 0;
}

static int is_ws(Py_UCS4 c)
{
    /* tokens.WHITESPACE (Unicode White_Space) */
    switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2000: case 0x2001: case 0x2002: case 0x2003: case 0x2004: case 0x2005:
    case 0x2006: case 0x2007: case 0x2008: case 0x2009: case 0x200A: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
        return 1;
    default:
        return 0;
    }
}

enum { R_SYSTEM = 1, R_USER = 2, R_ASSISTANT = 3 };

static int role_of(PyObject *r)
{
    if (!PyUnicode_CheckExact(r) || !PyUnicode_IS_ASCII(r))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(r);
    const char *d = (const char *)PyUnicode_DATA(r);
    if (n == 4 && memcmp(d, "user", 4) == 0)
        return R_USER;
    if (n == 9 && memcmp(d, "assistant", 9) == 0)
        return R_ASSISTANT;
    if (n == 6 && memcmp(d, "system", 6) == 0)
        return R_SYSTEM;
    return 0;
}

/* 1: some special text occurs in content; 0: none; -1: error */
static int has_special(Walker *w, PyObject *content)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(content);
    Py_ssize_t nt = PyTuple_GET_SIZE(w->specials);
    if (!w->specials_lt) {
        for (Py_ssize_t j = 0; j < nt; j++) {
            Py_ssize_t at = PyUnicode_Find(content, PyTuple_GET_ITEM(w->specials, j), 0, n, 1);
            if (at == -2)
                return -1;
            if (at >= 0)
                return 1;
        }
        return 0;
    }
    Py_ssize_t pos = 0;
    while (pos < n) {
        Py_ssize_t at = PyUnicode_FindChar(content, '<', pos, n, 1);
        if (at == -2)
            return -1;
        if (at < 0)
            return 0;
        for (Py_ssize_t j = 0; j < nt; j++) {
            Py_ssize_t m = PyUnicode_Tailmatch(content, PyTuple_GET_ITEM(w->specials, j), at, n, -1);
            if (m < 0)
                return -1;
            if (m)
                return 1;
        }
        pos = at + 1;
    }
    return 0;
}

/* validate._Validator._answer: 0 ok, -1 error, 1 the odd-case table is needed first (nothing changed) */
static int add_answer(Walker *w, PyObject *content)
{
    Py_ssize_t up, low;
    if (count_case(content, &up, &low) < 0)
        return 1;
    w->answers++;
    w->upper += up;
    w->lower += low;
    if (w->all_same) {
        if (w->first == NULL) {
            Py_INCREF(content);
            w->first = content;
        } else {
            int eq = PyUnicode_Compare(content, w->first);
            if (eq == -1 && PyErr_Occurred())
                return -1;
            if (eq != 0) {
                w->all_same = 0;
                Py_CLEAR(w->first);
            }
        }
    }
    if (w->prefix == NULL) {
        Py_INCREF(content);
        w->prefix = content;
        Py_INCREF(content);
        w->suffix = content;
        return 0;
    }
    if (PyUnicode_GET_LENGTH(w->prefix)) {
        Py_ssize_t m = PyUnicode_Tailmatch(content, w->prefix, 0, PY_SSIZE_T_MAX, -1);
        if (m < 0)
            return -1;
        if (!m) {
            PyObject *np = PyObject_CallFunctionObjArgs(w->common_prefix, w->prefix, content, NULL);
            if (np == NULL)
                return -1;
            Py_SETREF(w->prefix, np);
        }
    }
    if (PyUnicode_GET_LENGTH(w->suffix)) {
        Py_ssize_t m = PyUnicode_Tailmatch(content, w->suffix, 0, PY_SSIZE_T_MAX, 1);
        if (m < 0)
            return -1;
        if (!m) {
            PyObject *ns = PyObject_CallFunctionObjArgs(w->common_suffix, w->suffix, content, NULL);
            if (ns == NULL)
                return -1;
            Py_SETREF(w->suffix, ns);
        }
    }
    return 0;
}

#define MAX_FAST_MESSAGES 64

/* 0: a record with no finding, (*n_out, *chars_out, *system_out) set and its answers added (train);
 * 1: some rule could fire (nothing changed); -1: error */
static int walk_core(Walker *w, PyObject *obj, int check_special, int train, Py_ssize_t *n_out,
                     Py_ssize_t *chars_out, int *system_out)
{
    if (!PyDict_CheckExact(obj) || PyDict_GET_SIZE(obj) != 1)
        return 1;
    PyObject *msgs = PyDict_GetItemWithError(obj, k_messages);
    if (msgs == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (!PyList_CheckExact(msgs))
        return 1;
    Py_ssize_t n = PyList_GET_SIZE(msgs);
    if (n < 2 || n > MAX_FAST_MESSAGES)
        return 1;
    PyObject *answers[MAX_FAST_MESSAGES];
    Py_ssize_t n_answers = 0, chars = 0;
    int systems = 0, prev = 0, first_turn = 0, need_odd = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(msgs, i);
        if (!PyDict_CheckExact(m) || PyDict_GET_SIZE(m) != 2)
            return 1;
        PyObject *r = PyDict_GetItemWithError(m, k_role);
        if (r == NULL)
            return PyErr_Occurred() ? -1 : 1;
        PyObject *c = PyDict_GetItemWithError(m, k_content);
        if (c == NULL)
            return PyErr_Occurred() ? -1 : 1;
        int role = role_of(r);
        if (!role || !PyUnicode_CheckExact(c))
            return 1;
        Py_ssize_t len = PyUnicode_GET_LENGTH(c);
        if (len == 0)
            return 1; /* M07 / M08 */
        Py_UCS4 c0 = PyUnicode_READ_CHAR(c, 0);
        if (is_ws(c0) || Py_UNICODE_ISSPACE(c0))
            return 1; /* M14, or maybe M07 / M08 */
        chars += len;
        if (role == R_SYSTEM) {
            /* C02 (not first), C03 (two), C10 (the template drops it) */
            if (i != 0 || w->drops_system)
                return 1;
            systems++;
        } else {
            if (!first_turn) {
                if (role != R_USER)
                    return 1; /* C04 */
                first_turn = 1;
            }
            if (role == prev)
                return 1; /* C05 */
        }
        if (role == R_ASSISTANT) {
            if (is_ws(PyUnicode_READ_CHAR(c, len - 1)))
                return 1; /* Q05 */
            answers[n_answers++] = c;
            if (train && odd_bits == NULL && !PyUnicode_IS_ASCII(c))
                need_odd = 1;
        }
        if (check_special) {
            int sp = has_special(w, c);
            if (sp != 0)
                return sp < 0 ? -1 : 1; /* M13 */
        }
        prev = role;
    }
    if (prev != R_ASSISTANT || need_odd)
        return 1; /* C06 / C01; or the Python path sets the odd-case table up first */
    if (train) {
        for (Py_ssize_t j = 0; j < n_answers; j++) {
            int rc = add_answer(w, answers[j]);
            if (rc != 0) {
                if (rc > 0)
                    PyErr_SetString(PyExc_RuntimeError, "odd-case table missing");
                return -1;
            }
        }
    }
    *n_out = n;
    *chars_out = chars;
    *system_out = systems > 0;
    return 0;
}

static PyObject *Walker_walk(Walker *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "walk(obj, check_special, train)");
        return NULL;
    }
    int check_special = PyObject_IsTrue(args[1]);
    int train = PyObject_IsTrue(args[2]);
    if (check_special < 0 || train < 0)
        return NULL;
    Py_ssize_t n, chars;
    int has_system;
    int rc = walk_core(w, args[0], check_special, train, &n, &chars, &has_system);
    if (rc < 0)
        return NULL;
    if (rc > 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(nnO)", n, chars, has_system ? Py_True : Py_False);
}

/* ---- the dataset bookkeeping of records (validate._Validator._record_done without the index) ----------
 * record(key, line, offset, length, messages, characters, has_system, train) appends one record; scan()
 * appends the records it checks; take_records() hands everything over in order and resets:
 * (examples, messages u32[], characters u64[], no_system_count, first no-system lines, keys u64[],
 * lines u64[], offsets u64[], lengths u64[]) (native byte order, for array.frombytes). */
static int buf_put(Buf *b, const void *v, size_t size)
{
    if (b->n + size > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + size)
            cap *= 2;
        char *q = PyMem_Realloc(b->p, cap);
        if (q == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, v, size);
    b->n += size;
    return 0;
}

static PyObject *buf_take(Buf *b)
{
    PyObject *out = PyBytes_FromStringAndSize(b->p, (Py_ssize_t)b->n);
    if (out != NULL)
        b->n = 0;
    if (b->cap > (1u << 22)) { /* give a large buffer back */
        PyMem_Free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    return out;
}

static int put_record(Walker *w, long long key, uint64_t line, uint64_t offset, uint64_t length, Py_ssize_t n,
                      Py_ssize_t chars, int has_system, int train)
{
    uint64_t k = (uint64_t)key;
    if (buf_put(&w->keys, &k, 8) || buf_put(&w->lines, &line, 8) || buf_put(&w->offsets, &offset, 8) ||
        buf_put(&w->lengths, &length, 8))
        return -1;
    if (!train)
        return 0;
    uint32_t m = n > 0xFFFFFFFFLL ? 0xFFFFFFFFu : (uint32_t)n;
    uint64_t c = (uint64_t)chars;
    if (buf_put(&w->messages, &m, 4) || buf_put(&w->chars, &c, 8))
        return -1;
    w->examples++;
    if (!has_system) {
        w->no_system_count++;
        if (w->n_no_system < w->lines_shown && w->n_no_system < MAX_LINES_SHOWN)
            w->no_system[w->n_no_system++] = line;
    }
    return 0;
}

static PyObject *Walker_record(Walker *w, PyObject *const *args, Py_ssize_t nargs)
{
    long long key;
    unsigned long long line, offset, length;
    Py_ssize_t n, chars;
    int has_system, train;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "record(key, line, offset, length, messages, chars, has_system, train)");
        return NULL;
    }
    key = PyLong_AsLongLong(args[0]);
    line = PyLong_AsUnsignedLongLong(args[1]);
    offset = PyLong_AsUnsignedLongLong(args[2]);
    length = PyLong_AsUnsignedLongLong(args[3]);
    n = PyLong_AsSsize_t(args[4]);
    chars = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    has_system = PyObject_IsTrue(args[6]);
    train = PyObject_IsTrue(args[7]);
    if (has_system < 0 || train < 0)
        return NULL;
    if (put_record(w, key, line, offset, length, n, chars, has_system, train) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Walker_take_records(Walker *w, PyObject *unused)
{
    (void)unused;
    PyObject *shown = PyList_New(w->n_no_system);
    if (shown == NULL)
        return NULL;
    for (int i = 0; i < w->n_no_system; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(w->no_system[i]);
        if (v == NULL) {
            Py_DECREF(shown);
            return NULL;
        }
        PyList_SET_ITEM(shown, i, v);
    }
    PyObject *parts[6];
    Buf *bufs[6] = {&w->messages, &w->chars, &w->keys, &w->lines, &w->offsets, &w->lengths};
    for (int i = 0; i < 6; i++) {
        parts[i] = buf_take(bufs[i]);
        if (parts[i] == NULL) {
            for (int j = 0; j < i; j++)
                Py_DECREF(parts[j]);
            Py_DECREF(shown);
            return NULL;
        }
    }
    PyObject *out = Py_BuildValue("(nNNnNNNNN)", w->examples, parts[0], parts[1], w->no_system_count, shown,
                                  parts[2], parts[3], parts[4], parts[5]);
    w->examples = 0;
    w->no_system_count = 0;
    w->n_no_system = 0;
    return out;
}

/* ---- the line loop for the usual line ---------------------------------------------------------------
 * configure(loads, dumps, t09_chars, max_line_bytes, lines_shown) once; then
 * scan(buf, pos, limit, base, line, train) -> (pos, line, status, characters) checks the lines of
 * buf[pos:limit] (buf[0] is at file offset base; line is the number of the line before pos) while each is
 * the usual valid record: a complete line starting with '{' and ending in '\n' (no CR, under
 * max_line_bytes), with no line gate that needs Python, that orjson parses and walk() accepts; each is
 * recorded as record() would (a line with a backslash-u escape is keyed from dumps(record), as dup_key
 * does). Stops with status 0 (no complete line left before limit), 1 (the line at pos needs the Python
 * checks: nothing of it was done) or 2 (the line just recorded is a training example of more than
 * t09_chars characters: the caller adds T09). */
#define PY_GATES (G_ALL & ~G_SPECIAL)

static PyObject *Walker_configure(Walker *w, PyObject *args)
{
    PyObject *loads, *dumps;
    Py_ssize_t t09, max_line;
    int shown;
    if (!PyArg_ParseTuple(args, "OOnni", &loads, &dumps, &t09, &max_line, &shown))
        return NULL;
    if (!PyCallable_Check(loads) || !PyCallable_Check(dumps)) {
        PyErr_SetString(PyExc_TypeError, "configure: loads and dumps must be callable");
        return NULL;
    }
    Py_INCREF(loads);
    Py_XSETREF(w->loads, loads);
    Py_INCREF(dumps);
    Py_XSETREF(w->dumps, dumps);
    w->t09_chars = t09;
    w->max_line = max_line;
    w->lines_shown = shown;
    Py_RETURN_NONE;
}

static PyObject *Walker_scan(Walker *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan(buf: bytes, pos, limit, base, line, train)");
        return NULL;
    }
    if (w->loads == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "scan: configure() first");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    unsigned long long base = PyLong_AsUnsignedLongLong(args[3]);
    unsigned long long line = PyLong_AsUnsignedLongLong(args[4]);
    int train = PyObject_IsTrue(args[5]);
    if (PyErr_Occurred() || train < 0)
        return NULL;
    if (limit > size)
        limit = size;
    if (pos < 0)
        pos = 0;
    int status = 0;
    Py_ssize_t chars = 0;
    while (pos < limit) {
        const char *nl = memchr(p + pos, '\n', (size_t)(limit - pos));
        if (nl == NULL)
            break;
        Py_ssize_t len = nl - (p + pos);
        if (len == 0 || len >= w->max_line || p[pos] != '{' || p[pos + len - 1] == '\r') {
            status = 1;
            break;
        }
        long long key;
        int gates = line_scan_core((const unsigned char *)p + pos, len, &key);
        if (gates & PY_GATES) {
            status = 1;
            break;
        }
        PyObject *view = PyMemoryView_FromMemory((char *)p + pos, len, PyBUF_READ);
        if (view == NULL)
            return NULL;
        PyObject *obj = PyObject_CallOneArg(w->loads, view);
        Py_DECREF(view);
        if (obj == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL; /* KeyboardInterrupt, SystemExit: not a finding */
            PyErr_Clear(); /* the Python path parses the line again and reports (or raises) what it finds */
            status = 1;
            break;
        }
        Py_ssize_t n;
        int has_system;
        int rc = walk_core(w, obj, gates & G_SPECIAL, train, &n, &chars, &has_system);
        if (rc == 0 && key < 0) { /* a backslash-u escape: the key of the re-serialised record */
            PyObject *out = PyObject_CallOneArg(w->dumps, obj);
            if (out == NULL || !PyBytes_Check(out)) {
                Py_XDECREF(out);
                Py_DECREF(obj);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "scan: dumps must return bytes");
                return NULL;
            }
            key = escaped_key((const unsigned char *)PyBytes_AS_STRING(out), PyBytes_GET_SIZE(out));
            Py_DECREF(out);
        }
        Py_DECREF(obj);
        if (rc < 0)
            return NULL;
        if (rc > 0) {
            status = 1;
            break;
        }
        line++;
        if (put_record(w, key, line, base + (unsigned long long)pos, (unsigned long long)len, n, chars, has_system,
                       train) < 0)
            return NULL;
        pos += len + 1;
        if (train && chars > w->t09_chars) {
            status = 2;
            break;
        }
    }
    return Py_BuildValue("(nKin)", pos, line, status, status == 2 ? chars : (Py_ssize_t)0);
}

static PyObject *Walker_answer(Walker *w, PyObject *content)
{
    if (!PyUnicode_Check(content)) {
        PyErr_SetString(PyExc_TypeError, "answer() takes str");
        return NULL;
    }
    int rc = add_answer(w, content);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc == 0); /* False: call set_odd_case, then answer() again */
}

static PyObject *Walker_take(Walker *w, PyObject *unused)
{
    (void)unused;
    PyObject *out = Py_BuildValue("(nnnOOOO)", w->answers, w->upper, w->lower, w->all_same ? Py_True : Py_False,
                                  w->first ? w->first : Py_None, w->prefix ? w->prefix : Py_None,
                                  w->suffix ? w->suffix : Py_None);
    if (out == NULL)
        return NULL;
    w->answers = w->upper = w->lower = 0;
    w->all_same = 1;
    Py_CLEAR(w->first);
    Py_CLEAR(w->prefix);
    Py_CLEAR(w->suffix);
    return out;
}

static PyMethodDef Walker_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))Walker_walk, METH_FASTCALL,
     "(messages, characters, has_system) of a record with no finding, else None."},
    {"answer", (PyCFunction)Walker_answer, METH_O, "Add one answer; False: set_odd_case first."},
    {"take", (PyCFunction)Walker_take, METH_NOARGS,
     "(answers, upper, lower, all_same, first, prefix, suffix), then reset."},
    {"record", (PyCFunction)(void (*)(void))Walker_record, METH_FASTCALL,
     "Append one record (key, line, offset, length, messages, chars, has_system, train)."},
    {"take_records", (PyCFunction)Walker_take_records, METH_NOARGS,
     "(examples, messages, chars, no_system_count, no_system_lines, keys, lines, offsets, lengths), then reset."},
    {"configure", (PyCFunction)Walker_configure, METH_VARARGS, "configure(loads, dumps, t09_chars, max_line_bytes, lines_shown)"},
    {"scan", (PyCFunction)(void (*)(void))Walker_scan, METH_FASTCALL,
     "scan(buf, pos, limit, base, line, train) -> (pos, line, status, chars)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "phi3ft.data._speedups.Walker",
    .tp_basicsize = sizeof(Walker),
    .tp_dealloc = (destructor)Walker_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The record walk of validate._Validator._check_record for valid records, in C.",
    .tp_methods = Walker_methods,
    .tp_init = (initproc)Walker_init,
    .tp_new = PyType_GenericNew,
};

/* ---- newlines in a byte range of a file (the first line number of each parallel range) ------------- */
#if defined(HAVE_AVX2_PATH)
__attribute__((target("avx2,popcnt"))) static uint64_t count_nl_avx2(const unsigned char *p, size_t n,
                                                                      size_t *done)
{
    uint64_t total = 0;
    size_t i = 0;
    const __m256i nl = _mm256_set1_epi8('\n');
    for (; i + 64 <= n; i += 64) {
        uint32_t a = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(p + i)), nl));
        uint32_t b =
            (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(p + i + 32)), nl));
        total += (uint64_t)__builtin_popcountll((uint64_t)a | (uint64_t)b << 32);
    }
    *done = i;
    return total;
}
#endif

static uint64_t count_nl(const unsigned char *p, size_t n)
{
    uint64_t total = 0;
    size_t i = 0;
#if defined(HAVE_AVX2_PATH)
    if (use_simd)
        total = count_nl_avx2(p, n, &i);
#endif
    for (const unsigned char *q = p + i, *end = p + n; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
        total++;
    return total;
}

#ifdef HAVE_PREAD
static PyObject *count_newlines(PyObject *self, PyObject *args)
{
    (void)self;
    int fd;
    long long start, end;
    if (!PyArg_ParseTuple(args, "iLL", &fd, &start, &end))
        return NULL;
    size_t cap = 1 << 20;
    unsigned char *buf = PyMem_RawMalloc(cap);
    if (buf == NULL)
        return PyErr_NoMemory();
    uint64_t total = 0;
    long long pos = start;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    while (pos < end) {
        size_t want = (size_t)(end - pos) < cap ? (size_t)(end - pos) : cap;
        ssize_t got = pread(fd, buf, want, (off_t)pos);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (got == 0)
            break;
        total += count_nl(buf, (size_t)got);
        pos += got;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(buf);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromUnsignedLongLong(total);
}
#endif

static PyObject *simd(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
#ifdef HAVE_AVX2_PATH
    int before = use_simd;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "simd([enabled])");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) {
        int on = PyObject_IsTrue(args[0]);
        if (on < 0)
            return NULL;
        __builtin_cpu_init();
        use_simd = on && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    }
    return PyBool_FromLong(before);
#else
    (void)args;
    (void)nargs;
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
#ifdef HAVE_PREAD
    {"count_newlines", count_newlines, METH_VARARGS, "count_newlines(fd, start, end): newlines in bytes [start, end)."},
#endif
    {"simd", (PyCFunction)(void (*)(void))simd, METH_FASTCALL,
     "simd([enabled]) -> bool: whether line_scan used AVX2 (before the optional switch)."},
    {"line_scan", line_scan, METH_O, "(gates, key) of one raw JSONL line; key -1 with a \\u escape."},
    {"case_counts", case_counts, METH_O, "(upper, lower) letter counts; None until set_odd_case."},
    {"set_odd_case", set_odd_case, METH_VARARGS, "The BMP characters whose case mapping changes length."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "phi3ft.data._speedups", "C versions of the validator's per-byte scans.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    init_tables();
#ifdef HAVE_AVX2_PATH
    init_simd();
#endif
    if (PyType_Ready(&WalkerType) < 0)
        return NULL;
    k_messages = PyUnicode_InternFromString("messages");
    k_role = PyUnicode_InternFromString("role");
    k_content = PyUnicode_InternFromString("content");
    if (k_messages == NULL || k_role == NULL || k_content == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&WalkerType);
    if (PyModule_AddObject(m, "Walker", (PyObject *)&WalkerType) < 0) {
        Py_DECREF(&WalkerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
