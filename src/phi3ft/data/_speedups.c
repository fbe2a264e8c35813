/*
 * phi3ft.data._speedups: the validator's per-byte scans in C (optional; scan.py has the same functions in
 * Python and uses them when this module is missing or PHI3FT_PURE_PYTHON=1).
 *
 *   line_scan(body: bytes) -> (gates, key)
 *       gates: exactly scan.line_gates_py(body); key: exactly scan.dup_key_py(body, ..., False), or -1 when
 *       the line has a backslash-u escape (G_UESCAPE: the Python side re-serialises such lines first).
 *   case_counts(text: str) -> (upper, lower)
 *       exactly scan.case_counts_py(text): characters that str.lower() / str.upper() change.
 *   set_odd_case(codepoints: bytes, lower_changes: bytes, upper_changes: bytes) -> None
 *       the BMP characters whose lower() or upper() is not one character (UCS-4 little-endian), with
 *       whether lower() / upper() changes each (one byte per character); before then such characters
 *       make case_counts return None.
 *
 * tests/unit/test_data_speedups.py checks both functions against the Python ones (fuzzed lines, every
 * code point).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

/* The secret pre-filter of scan.line_gates_py: literal necessary conditions of scan.SECRETS. */
static int secret_possible(const unsigned char *p, Py_ssize_t n, unsigned seen)
{
    const unsigned char *q;
    if (seen & S_EQ) {
        for (q = memchr(p, '=', n); q; q = memchr(q + 1, '=', (size_t)(p + n - q - 1))) {
            Py_ssize_t i = q - p;
            if (i >= 3 && (memcmp(q - 3, "Key", 3) == 0 || memcmp(q - 3, "ure", 3) == 0 ||
                           memcmp(q - 3, "sig", 3) == 0))
                return 1;
            if (q + 1 >= p + n)
                break;
        }
    }
    if (seen & S_DASH) {
        for (q = memchr(p, '-', n); q; q = memchr(q + 1, '-', (size_t)(p + n - q - 1))) {
            Py_ssize_t i = q - p;
            if (i >= 2 && q[-2] == 's' && q[-1] == 'k')
                return 1;
            if (i >= 4 && q[-4] == 'x' && q[-3] == 'o' && q[-2] == 'x')
                return 1;
            if (n - i >= 10 && memcmp(q, "-----BEGIN", 10) == 0)
                return 1;
            if (q + 1 >= p + n)
                break;
        }
    }
    if (seen & S_UNDERSCORE) { /* g(?:h[pousr]_|ithub_pat_) */
        for (q = memchr(p, '_', n); q; q = memchr(q + 1, '_', (size_t)(p + n - q - 1))) {
            Py_ssize_t i = q - p;
            if (i >= 3 && q[-3] == 'g' && q[-2] == 'h' && q[-1] && strchr("pousr", q[-1]))
                return 1;
            if (i >= 10 && memcmp(q - 10, "github_pat", 10) == 0)
                return 1;
            if (q + 1 >= p + n)
                break;
        }
    }
    if (seen & S_A) { /* A[KS]IA */
        for (q = memchr(p, 'A', n); q; q = memchr(q + 1, 'A', (size_t)(p + n - q - 1))) {
            if (p + n - q >= 4 && (q[1] == 'K' || q[1] == 'S') && q[2] == 'I' && q[3] == 'A')
                return 1;
            if (q + 1 >= p + n)
                break;
        }
    }
    if (has_substring(p, n, "earer", 5))
        return 1;
    if ((seen & S_AT) && has_substring(p, n, "://", 3))
        return 1;
    return 0;
}

static PyObject *line_scan(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "line_scan() takes bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);

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
    int gates = 0, uescape = 0, esc_ascii = 0, esc_ctrl = 0;
    if (seen & S_BACKSLASH) {
        const unsigned char *q;
        for (q = memchr(p, '\\', n); q; q = memchr(q + 1, '\\', (size_t)(p + n - q - 1))) {
            Py_ssize_t i = q - p;
            if (i + 1 >= n)
                break;
            unsigned char e = q[1];
            if (e == 'u') {
                uescape = 1;
                if (n - i >= 5 && q[2] == '0' && q[3] == '0' && q[4] >= '0' && q[4] <= '7')
                    esc_ascii = 1;
            } else if (e == '/') {
                esc_ascii = 1;
            } else if (e == 'b' || e == 'f') {
                esc_ctrl = 1;
            }
        }
    }
    if (uescape)
        gates = G_UESCAPE;
    if (esc_ascii)
        return Py_BuildValue("(iL)", G_ALL | gates, uescape ? -1LL : (long long)(kept << 32 | crc));
    if (esc_ctrl)
        gates |= G_CONTROL;
    if (seen & S_LT)
        gates |= G_SPECIAL;
    if (seen & S_DEL)
        gates |= G_CONTROL;
    if (seen & S_AT)
        gates |= G_EMAIL;
    if (seen & S_PLUS) {
        const unsigned char *q;
        for (q = memchr(p, '+', n); q; q = memchr(q + 1, '+', (size_t)(p + n - q - 1))) {
            if (q + 1 >= p + n)
                break;
            unsigned char e = q[1];
            if ((e >= '0' && e <= '9') || e == '\\' || e >= 0x80) {
                gates |= G_PHONE;
                break;
            }
        }
    }
    if (card)
        gates |= G_CARD;
    if (iban)
        gates |= G_IBAN;
    if (secret_possible(p, n, seen))
        gates |= G_SECRET;
    return Py_BuildValue("(iL)", gates, uescape ? -1LL : (long long)(kept << 32 | crc));
}

/* ---- Q03 casing ------------------------------------------------------------------------------------ */
static unsigned char *odd_bits; /* 65536 bits: BMP characters whose lower() or upper() is not 1 char */
static unsigned char *odd_lower; /* 65536 bits: lower() changes it (for odd characters) */
static unsigned char *odd_upper;

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
    PyMem_Free(odd_bits);
    odd_bits = bits;
    odd_lower = bits + 8192;
    odd_upper = bits + 16384;
    Py_RETURN_NONE;
}

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
/* (upper, lower) of one str; returns -1 when a BMP character needs the odd table and it is not set yet */
static int count_case(PyObject *text, Py_ssize_t *up_out, Py_ssize_t *low_out)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t up = 0, low = 0, start = 0;
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

static PyObject *Walker_walk(Walker *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "walk(obj, check_special, train)");
        return NULL;
    }
    PyObject *obj = args[0];
    int check_special = PyObject_IsTrue(args[1]);
    int train = PyObject_IsTrue(args[2]);
    if (check_special < 0 || train < 0)
        return NULL;
    if (!PyDict_CheckExact(obj) || PyDict_GET_SIZE(obj) != 1)
        Py_RETURN_NONE;
    PyObject *msgs = PyDict_GetItemWithError(obj, k_messages);
    if (msgs == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    if (!PyList_CheckExact(msgs))
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(msgs);
    if (n < 2 || n > MAX_FAST_MESSAGES)
        Py_RETURN_NONE;
    PyObject *answers[MAX_FAST_MESSAGES];
    Py_ssize_t n_answers = 0, chars = 0;
    int systems = 0, prev = 0, first_turn = 0, need_odd = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(msgs, i);
        if (!PyDict_CheckExact(m) || PyDict_GET_SIZE(m) != 2)
            Py_RETURN_NONE;
        PyObject *r = PyDict_GetItemWithError(m, k_role);
        if (r == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;
        }
        PyObject *c = PyDict_GetItemWithError(m, k_content);
        if (c == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;
        }
        int role = role_of(r);
        if (!role || !PyUnicode_CheckExact(c))
            Py_RETURN_NONE;
        Py_ssize_t len = PyUnicode_GET_LENGTH(c);
        if (len == 0)
            Py_RETURN_NONE; /* M07 / M08 */
        Py_UCS4 c0 = PyUnicode_READ_CHAR(c, 0);
        if (is_ws(c0) || Py_UNICODE_ISSPACE(c0))
            Py_RETURN_NONE; /* M14, or maybe M07 / M08 */
        chars += len;
        if (role == R_SYSTEM) {
            /* C02 (not first), C03 (two), C10 (the template drops it) */
            if (i != 0 || w->drops_system)
                Py_RETURN_NONE;
            systems++;
        } else {
            if (!first_turn) {
                if (role != R_USER)
                    Py_RETURN_NONE; /* C04 */
                first_turn = 1;
            }
            if (role == prev)
                Py_RETURN_NONE; /* C05 */
        }
        if (role == R_ASSISTANT) {
            if (is_ws(PyUnicode_READ_CHAR(c, len - 1)))
                Py_RETURN_NONE; /* Q05 */
            answers[n_answers++] = c;
            if (train && odd_bits == NULL && !PyUnicode_IS_ASCII(c))
                need_odd = 1;
        }
        if (check_special) {
            int sp = has_special(w, c);
            if (sp < 0)
                return NULL;
            if (sp)
                Py_RETURN_NONE; /* M13 */
        }
        prev = role;
    }
    if (prev != R_ASSISTANT || need_odd)
        Py_RETURN_NONE; /* C06 / C01; or the Python path sets the odd-case table up first */
    if (train) {
        for (Py_ssize_t j = 0; j < n_answers; j++) {
            int rc = add_answer(w, answers[j]);
            if (rc != 0) {
                if (rc > 0)
                    PyErr_SetString(PyExc_RuntimeError, "odd-case table missing");
                return NULL;
            }
        }
    }
    return Py_BuildValue("(nnO)", n, chars, systems ? Py_True : Py_False);
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

static PyMethodDef methods[] = {
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
