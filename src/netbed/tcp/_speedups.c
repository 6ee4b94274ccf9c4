/* netbed.tcp._speedups: the reader's decoder and the analysis's hot loop, in C.
 *
 * A line-by-line mirror of netbed/tcp/decode.py (frames -> TCP segments) and of
 * Analyzer.feed in netbed/tcp/connection.py (Wireshark's sequence analysis and
 * the RFC 9293 replay, with netbed's keep-alive rule). The Python code is the reference and runs everywhere
 * (inside the hosts too); this module is an optional build on the orchestrator
 * side, and tests/unit/test_tcp_speedups.py checks that both agree segment by
 * segment on every capture the tests have. Change both together.
 *
 * Python gives each connection an object (factory) and takes its summary back
 * when the connection is over (finish); the C side keeps only fixed-size state
 * and small growable arrays per open connection.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#define M32 0xFFFFFFFFu
#define HALF 0x80000000u
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10
#define SFR (F_SYN | F_FIN | F_RST)
#define FAST_RTX_NS 20000000LL
#define OOO_NS 3000000LL
#define MAX_LAYERS 8
#define MAX_RECORD (1 << 24)

enum { MK_RTX = 1, MK_FAST = 2, MK_SPUR = 4, MK_OOO = 8, MK_KA = 16, MK_KA_ACK = 32, MK_ZW = 64, MK_ZWP = 128,
       MK_ZWP_ACK = 256, MK_DUP = 512, MK_WUPD = 1024, MK_LOST = 2048, MK_UNSEEN = 4096 };
#define MK_ANY_RTX (MK_RTX | MK_FAST | MK_SPUR)

/* State codes: the order of connection.STATE_CODES */
enum { S_LISTEN, S_SYN_SENT, S_SYN_RECEIVED, S_ESTABLISHED, S_FIN_WAIT_1, S_FIN_WAIT_2, S_CLOSE_WAIT, S_CLOSING,
       S_LAST_ACK, S_TIME_WAIT, S_CLOSED };

/* stats counters, in the order of ReadStats' fields */
enum { ST_FRAMES, ST_TCP, ST_NOT_TCP, ST_CUT, ST_TCP_CUT, ST_BOGUS, ST_FRAGMENTS, ST_UNKNOWN_LINK, ST_N };

static inline unsigned u16(const uint8_t *b) { return ((unsigned)b[0] << 8) | b[1]; }
static inline uint32_t u32(const uint8_t *b) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}
static inline uint32_t u32le(const uint8_t *b) {
    return ((uint32_t)b[3] << 24) | ((uint32_t)b[2] << 16) | ((uint32_t)b[1] << 8) | b[0];
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    uint8_t key[36];
    int keylen;
    uint32_t seq, ack;
    int flags, win;
    long seglen;
    Py_ssize_t opt, optlen; /* option bytes, relative to the buffer */
} Seg;

static int ppp_to_ethertype(unsigned proto) {
    switch (proto) {
    case 0x0021: return 0x0800;
    case 0x0057: return 0x86DD;
    case 0x0281: return 0x8847;
    case 0x0283: return 0x8848;
    }
    return -1;
}

/* _ethernet: ethertype and offset past the Ethernet header and any VLAN tags (p + 14 <= end checked by callers) */
static void ethernet(const uint8_t *buf, Py_ssize_t p, Py_ssize_t end, int *etype, Py_ssize_t *out) {
    int e = u16(buf + p + 12);
    p += 14;
    while (e == 0x8100 || e == 0x88A8) {
        if (p + 4 > end) break;
        e = u16(buf + p + 2);
        p += 4;
    }
    *etype = e;
    *out = p;
}

/* _ppp */
static int ppp(const uint8_t *buf, Py_ssize_t u, Py_ssize_t end, int *etype, Py_ssize_t *out) {
    unsigned proto;
    if (u + 2 <= end && buf[u] == 0xFF && buf[u + 1] == 0x03) u += 2;
    if (u >= end) return 0;
    if (buf[u] & 1) {
        proto = buf[u];
        u += 1;
    } else if (u + 2 <= end) {
        proto = u16(buf + u);
        u += 2;
    } else
        return 0;
    int inner = ppp_to_ethertype(proto);
    if (inner < 0) return 0;
    *etype = inner;
    *out = u;
    return 1;
}

/* _under_shim */
static int under_shim(const uint8_t *buf, Py_ssize_t p, Py_ssize_t end, int etype, int *oe, Py_ssize_t *op) {
    if (etype == 0x8864) {
        if (p + 8 > end) return 0;
        int inner = ppp_to_ethertype(u16(buf + p + 6));
        if (inner < 0) return 0;
        *oe = inner;
        *op = p + 8;
        return 1;
    }
    if (etype == 0x8847 || etype == 0x8848) {
        while (p + 4 <= end) {
            int bottom = buf[p + 2] & 1;
            p += 4;
            if (bottom) {
                if (p < end && (buf[p] >> 4 == 4 || buf[p] >> 4 == 6)) {
                    *oe = buf[p] >> 4 == 4 ? 0x0800 : 0x86DD;
                    *op = p;
                    return 1;
                }
                return 0;
            }
        }
    }
    return 0;
}

/* _under_l2tp */
static int under_l2tp(const uint8_t *buf, Py_ssize_t u, Py_ssize_t end, int *oe, Py_ssize_t *op) {
    unsigned flags = u16(buf + u);
    if (flags & 0x8000 || (flags & 0xF) != 2) return 0;
    u += 6 + 2 * ((flags >> 14) & 1) + 4 * ((flags >> 11) & 1);
    if (flags & 0x0200) {
        if (u + 2 > end) return 0;
        u += 2 + u16(buf + u);
    }
    return ppp(buf, u, end, oe, op);
}

/* _under_tunnel */
static int under_tunnel(const uint8_t *buf, Py_ssize_t t, Py_ssize_t end, int proto, int *oe, Py_ssize_t *op) {
    if (proto == 4) { *oe = 0x0800; *op = t; return 1; }
    if (proto == 41) { *oe = 0x86DD; *op = t; return 1; }
    if (proto == 47) {
        if (t + 4 > end) return 0;
        unsigned flags = u16(buf + t), inner = u16(buf + t + 2);
        if (flags & 0x4007) return 0;
        t += 4 + 4 * ((flags >> 15) + ((flags >> 13) & 1) + ((flags >> 12) & 1));
        if (inner == 0x6558) {
            if (t + 14 > end) return 0;
            ethernet(buf, t, end, oe, op);
            return 1;
        }
        *oe = inner;
        *op = t;
        return 1;
    }
    if (proto == 17 && t + 8 <= end) {
        unsigned sport = u16(buf + t), dport = u16(buf + t + 2);
        unsigned port = (dport == 4789 || dport == 6081 || dport == 1701) ? dport : sport;
        Py_ssize_t u = t + 8;
        if (port == 4789) {
            if (u + 22 > end) return 0;
            ethernet(buf, u + 8, end, oe, op);
            return 1;
        }
        if (port == 6081 && u + 8 <= end) {
            unsigned inner = u16(buf + u + 2);
            u += 8 + ((buf[u] & 0x3F) << 2);
            if (inner == 0x6558) {
                if (u + 14 > end) return 0;
                ethernet(buf, u, end, oe, op);
                return 1;
            }
            *oe = inner;
            *op = u;
            return 1;
        }
        if (port == 1701 && u + 6 <= end) return under_l2tp(buf, u, end, oe, op);
    }
    return 0;
}

static inline int is_ipv6_ext(int proto) {
    return proto == 0 || proto == 43 || proto == 60 || proto == 135 || proto == 139 || proto == 140;
}

/* _find_tcp: 1 and (v6, ip offset, tcp offset, tcp length) when there is TCP, else 0 after counting why.
 * -1 when a read would leave the buffer (Python's struct.error: a corrupt capture). */
static int find_tcp(const uint8_t *buf, Py_ssize_t blen, Py_ssize_t p, Py_ssize_t end, Py_ssize_t wend, int etype,
                    long long *st, int *v6, Py_ssize_t *ip, Py_ssize_t *tcp, long *seglen_out) {
    for (int layer = 0; layer < MAX_LAYERS; layer++) {
        int proto;
        Py_ssize_t t;
        long seglen;
        if (etype == 0x0800) {
            if (p + 20 > end) { st[ST_CUT]++; return 0; }
            int vihl = buf[p];
            long total = u16(buf + p + 2);
            unsigned frag = u16(buf + p + 6);
            proto = buf[p + 9];
            if (proto != 6 && proto != 4 && proto != 41 && proto != 47 && proto != 17) { st[ST_NOT_TCP]++; return 0; }
            if (frag & 0x3FFF) { st[ST_FRAGMENTS]++; return 0; }
            int ihl = (vihl & 15) << 2;
            if (ihl < 20) { st[ST_BOGUS]++; return 0; }
            t = p + ihl;
            seglen = ((total > 0 && total <= wend - p) ? total : (long)(wend - p)) - ihl;
        } else if (etype == 0x86DD) {
            if (p + 40 > end) { st[ST_CUT]++; return 0; }
            long plen6 = u16(buf + p + 4);
            proto = buf[p + 6];
            t = p + 40;
            seglen = (plen6 > 0 && plen6 <= wend - t) ? plen6 : (long)(wend - t);
            while (is_ipv6_ext(proto) || proto == 44) {
                if (t + 8 > end) break;
                long hl;
                if (proto == 44) {
                    if (u16(buf + t + 2) & 0xFFF9) { st[ST_FRAGMENTS]++; return 0; }
                    hl = 8;
                    proto = buf[t];
                } else {
                    int ext = buf[t + 1];
                    proto = buf[t];
                    hl = (long)(ext + 1) << 3;
                }
                t += hl;
                seglen -= hl;
            }
        } else {
            int ie;
            Py_ssize_t ipos;
            if (!under_shim(buf, p, end, etype, &ie, &ipos)) { st[ST_NOT_TCP]++; return 0; }
            etype = ie;
            p = ipos;
            continue;
        }
        if (proto == 6) {
            if (t + 20 > end) { st[ST_CUT]++; st[ST_TCP_CUT]++; return 0; }
            *v6 = etype == 0x86DD;
            *ip = p;
            *tcp = t;
            *seglen_out = seglen;
            return 1;
        }
        Py_ssize_t wt = t + seglen;
        if (wt < end) end = wt;
        int ie;
        Py_ssize_t ipos;
        if (!under_tunnel(buf, t, end, proto, &ie, &ipos)) { st[ST_NOT_TCP]++; return 0; }
        etype = ie;
        p = ipos;
    }
    st[ST_NOT_TCP]++;
    (void)blen;
    return 0;
}

/* _decode for one record: 1 with *s filled, 0 when it is no TCP segment (counted) */
static int decode(const uint8_t *buf, Py_ssize_t blen, Py_ssize_t off, long caplen, long wire, long link,
                  long long *st, Seg *s) {
    Py_ssize_t end = off + caplen, p;
    int etype;
    if (wire < caplen) wire = caplen;
    if (link == 1 && caplen >= 54) {
        const uint8_t *b = buf + off;
        etype = u16(b + 12);
        unsigned frag = u16(b + 20);
        if (etype == 0x0800 && b[14] == 0x45 && b[23] == 6 && !(frag & 0x3FFF)) {
            long total = u16(b + 16);
            int hoff = b[46];
            int hl = (hoff >> 4) << 2;
            long room = wire - 14;
            long seglen = ((total > 0 && total <= room) ? total : room) - 20;
            if (20 <= hl && hl <= seglen) {
                st[ST_TCP]++;
                s->flags = b[47] | ((hoff & 1) ? 0x100 : 0);
                memcpy(s->key, b + 26, 12);
                s->keylen = 12;
                s->seq = u32(b + 38);
                s->ack = u32(b + 42);
                s->win = u16(b + 48);
                s->seglen = seglen - hl;
                s->opt = off + 54;
                s->optlen = hl > 20 ? (off + 34 + hl <= end ? hl - 20 : end - off - 54) : 0;
                return 1;
            }
        }
    }
    if (link == 1) {
        if (caplen < 14) { st[ST_CUT]++; return 0; }
        ethernet(buf, off, end, &etype, &p);
    } else if (link == 113) {
        if (caplen < 16) { st[ST_CUT]++; return 0; }
        etype = u16(buf + off + 14);
        p = off + 16;
    } else if (link == 276) {
        if (caplen < 20) { st[ST_CUT]++; return 0; }
        etype = u16(buf + off);
        p = off + 20;
    } else if (link == 101 || link == 12 || link == 14 || link == 228 || link == 229) {
        if (caplen < 1) { st[ST_CUT]++; return 0; }
        int v = buf[off] >> 4;
        etype = v == 4 ? 0x0800 : v == 6 ? 0x86DD : 0;
        p = off;
    } else if (link == 0 || link == 108) {
        if (caplen < 4) { st[ST_CUT]++; return 0; }
        uint32_t fam = link == 108 ? u32(buf + off) : u32le(buf + off);
        if (link == 0 && fam > 0xFFFF) fam = u32(buf + off);
        etype = fam == 2 ? 0x0800 : (fam == 10 || fam == 24 || fam == 28 || fam == 30) ? 0x86DD : 0;
        p = off + 4;
    } else if (link == 9 || link == 50) {
        if (!ppp(buf, off, end, &etype, &p)) { st[ST_NOT_TCP]++; return 0; }
    } else if (link == 242) {
        if (caplen < 44) { st[ST_CUT]++; return 0; }
        etype = u16(buf + off + 40);
        p = off + 44;
    } else {
        st[ST_UNKNOWN_LINK]++;
        return 0;
    }
    int v6;
    Py_ssize_t ip, t;
    long seglen;
    if (find_tcp(buf, blen, p, end, off + wire, etype, st, &v6, &ip, &t, &seglen) <= 0) return 0;
    int hoff = buf[t + 12];
    int hl = (hoff >> 4) << 2;
    if (hl < 20 || hl > seglen) { st[ST_BOGUS]++; return 0; }
    st[ST_TCP]++;
    s->flags = buf[t + 13] | ((hoff & 1) ? 0x100 : 0);
    s->seq = u32(buf + t + 4);
    s->ack = u32(buf + t + 8);
    s->win = u16(buf + t + 14);
    s->seglen = seglen - hl;
    if (v6) {
        memcpy(s->key, buf + ip + 8, 32);
        memcpy(s->key + 32, buf + t, 4);
        s->keylen = 36;
    } else {
        memcpy(s->key, buf + ip + 12, 8);
        memcpy(s->key + 8, buf + t, 4);
        s->keylen = 12;
    }
    s->opt = t + 20;
    s->optlen = hl > 20 ? (t + hl <= end ? hl - 20 : end - t - 20) : 0;
    return 1;
}

/* ---------------------------------------------------------------- growable arrays */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Vec; /* bytes */

static int vec_put(Vec *v, const void *x, Py_ssize_t size) {
    if (v->n + size > v->cap) {
        Py_ssize_t cap = v->cap ? v->cap * 2 : 64;
        while (cap < v->n + size) cap *= 2;
        char *q = PyMem_Realloc(v->p, cap);
        if (!q) { PyErr_NoMemory(); return -1; }
        v->p = q;
        v->cap = cap;
    }
    memcpy(v->p + v->n, x, size);
    v->n += size;
    return 0;
}

static void vec_free(Vec *v) { PyMem_Free(v->p); v->p = NULL; v->n = v->cap = 0; }

/* ---------------------------------------------------------------- the analysis */

typedef struct {
    uint32_t base;
    int base_set;
    uint32_t nextseq;
    int64_t nextseqtime;
    uint32_t lastack;
    int64_t lastacktime;
    int64_t window;
    long long dupacks;
    uint32_t maxseqtobeacked;
    int lastmarks;
    int has_acked;     /* netbed's own: the peer has acknowledged some of this direction's data, */
    uint32_t acked;    /* the highest of its ACKs */
    int state;
    int has_syn_next, has_fin_next;
    uint32_t syn_next, fin_next;
    int64_t rtx_seq, rtx_time;
    long long rtx, ka, zwp, fin_idx;
} Flow;

typedef struct { uint32_t idx; uint16_t marks; } MarkRec;
typedef struct { uint32_t idx; uint8_t d, state; } ChangeRec;
typedef struct { uint32_t idx; uint8_t d; int64_t gap; } GapRec;

typedef struct {
    PyObject *obj;  /* the Python Connection */
    PyObject *raw;  /* list of segment tuples when kept, else NULL */
    PyObject *key;  /* the first segment's key; its reverse is the other direction */
    PyObject *rkey;
    long long packets;
    int64_t first_ns, last_ns;
    long long first_frame, first_off, last_off;
    int client_dir;
    Flow f[2];
    int based, synack, crossed, settled, candidate, done;
    int64_t mru_syn, first_rtt;
    long long first_rst_idx, id;
    int initial[2];
    Vec fl, marks, changes, gaps, rsts;
} Conn;

typedef struct {
    PyObject_HEAD
    PyObject *table;    /* key bytes -> int (slot << 1 | direction) */
    PyObject *factory;  /* factory(first segment tuple) -> (Connection, keep) */
    PyObject *finish;   /* finish(Connection, summary, raw) */
    Conn **slots;
    Py_ssize_t nslots, cap;
    PyObject *free_slots; /* list of ints */
    Py_ssize_t *cands;    /* slots of closed connections waiting out the linger */
    Py_ssize_t ncands, capcands;
    long long st[ST_N];
    int64_t now, next_sweep, linger, sweep_every;
    long long next_id;
    int options;
} Analyzer;

static int is_closed(int s) { return s == S_TIME_WAIT || s == S_CLOSED; }

static int fin_state_send(Flow *side, int flags, uint32_t seq, long seglen) {
    /* on_send: returns new state or -1 */
    int st = side->state, nw = st;
    if (flags & F_RST) {
        nw = S_CLOSED;
    } else {
        if (flags & F_SYN) {
            side->syn_next = (seq + 1) & M32;
            side->has_syn_next = 1;
            if (!(flags & F_ACK)) {
                if (st == S_CLOSED || st == S_LISTEN) nw = S_SYN_SENT;
            } else if (st == S_LISTEN || st == S_CLOSED)
                nw = S_SYN_RECEIVED;
        }
        if (flags & F_FIN) {
            uint32_t fin_next = (uint32_t)(seq + seglen + ((flags & F_SYN) ? 1 : 0) + 1) & M32;
            if (!side->has_fin_next || ((fin_next - side->fin_next) & M32) < HALF) {
                side->fin_next = fin_next;
                side->has_fin_next = 1;
            }
            if (nw == S_ESTABLISHED || nw == S_SYN_RECEIVED)
                nw = S_FIN_WAIT_1;
            else if (nw == S_CLOSE_WAIT)
                nw = S_LAST_ACK;
        }
    }
    if (nw == st) return -1;
    side->state = nw;
    return nw;
}

static int on_receive(Flow *side, int flags, uint32_t ack) {
    int st = side->state, nw = st;
    if (flags & F_RST) {
        if (st == S_LISTEN || st == S_CLOSED) return -1;
        if (st == S_SYN_SENT && !((flags & F_ACK) && side->has_syn_next && ack == side->syn_next)) return -1;
        side->state = S_CLOSED;
        return S_CLOSED;
    }
    if (flags & F_SYN) {
        if (!(flags & F_ACK)) {
            if (st == S_LISTEN || st == S_SYN_SENT) nw = S_SYN_RECEIVED;
        } else if ((st == S_SYN_SENT || st == S_SYN_RECEIVED) && side->has_syn_next &&
                   ((ack - side->syn_next) & M32) < HALF)
            nw = S_ESTABLISHED;
    } else if (flags & F_ACK) {
        if (nw == S_SYN_RECEIVED && side->has_syn_next && ((ack - side->syn_next) & M32) < HALF) nw = S_ESTABLISHED;
    }
    if ((flags & F_ACK) && side->has_fin_next && ((ack - side->fin_next) & M32) < HALF) {
        if (nw == S_FIN_WAIT_1) nw = S_FIN_WAIT_2;
        else if (nw == S_CLOSING) nw = S_TIME_WAIT;
        else if (nw == S_LAST_ACK) nw = S_CLOSED;
    }
    if (flags & F_FIN) {
        if (nw == S_ESTABLISHED || nw == S_SYN_RECEIVED) nw = S_CLOSE_WAIT;
        else if (nw == S_FIN_WAIT_1) nw = S_CLOSING;
        else if (nw == S_FIN_WAIT_2) nw = S_TIME_WAIT;
    }
    if (nw == st) return -1;
    side->state = nw;
    return nw;
}

static int add_change(Conn *c, long long idx, int d, int state) {
    ChangeRec r = {(uint32_t)idx, (uint8_t)d, (uint8_t)state};
    return vec_put(&c->changes, &r, sizeof r);
}

static void undo_change(Conn *c, int d, int state) {
    ChangeRec *r = (ChangeRec *)c->changes.p;
    Py_ssize_t n = c->changes.n / (Py_ssize_t)sizeof(ChangeRec);
    for (Py_ssize_t k = n - 1; k >= 0; k--) {
        if (r[k].d == d && r[k].state == state) {
            memmove(r + k, r + k + 1, (n - k - 1) * sizeof(ChangeRec));
            c->changes.n -= sizeof(ChangeRec);
            return;
        }
    }
}

static PyObject *reverse_key(const uint8_t *key, int len) {
    uint8_t r[36];
    int n = (len - 4) / 2;
    memcpy(r, key + n, n);
    memcpy(r + n, key, n);
    memcpy(r + 2 * n, key + len - 2, 2);
    memcpy(r + 2 * n + 2, key + len - 4, 2);
    return PyBytes_FromStringAndSize((const char *)r, len);
}

static void conn_free(Conn *c) {
    Py_XDECREF(c->obj);
    Py_XDECREF(c->raw);
    Py_XDECREF(c->key);
    Py_XDECREF(c->rkey);
    vec_free(&c->fl);
    vec_free(&c->marks);
    vec_free(&c->changes);
    vec_free(&c->gaps);
    vec_free(&c->rsts);
    PyMem_Free(c);
}

/* The initial states, roles and syn_next, as Connection.__init__ sets them; the factory told us client_dir. */
static Conn *conn_new(Analyzer *a, int64_t ts, PyObject *key, const Seg *s, long long frame, long long foff,
                      Py_ssize_t *slot_out) {
    long long id = a->next_id++;
    PyObject *t = Py_BuildValue("(LLOkkii)", id, (long long)ts, key, (unsigned long)s->seq, (unsigned long)s->ack,
                                s->flags, s->keylen);
    if (!t) return NULL;
    PyObject *res = PyObject_CallOneArg(a->factory, t);
    Py_DECREF(t);
    if (!res) return NULL;
    PyObject *obj;
    int keep, client_dir, cstate, sstate;
    if (!PyArg_ParseTuple(res, "Opiii", &obj, &keep, &client_dir, &cstate, &sstate)) {
        Py_DECREF(res);
        return NULL;
    }
    Conn *c = PyMem_Calloc(1, sizeof(Conn));
    if (!c) { Py_DECREF(res); PyErr_NoMemory(); return NULL; }
    c->obj = obj;
    Py_INCREF(obj);
    Py_DECREF(res);
    if (keep) {
        c->raw = PyList_New(0);
        if (!c->raw) { conn_free(c); return NULL; }
    }
    c->key = key;
    Py_INCREF(key);
    c->rkey = reverse_key((const uint8_t *)PyBytes_AS_STRING(key), (int)PyBytes_GET_SIZE(key));
    if (!c->rkey) { conn_free(c); return NULL; }
    c->first_ns = c->last_ns = ts;
    c->first_frame = frame;
    c->first_off = foff;
    c->client_dir = client_dir;
    c->initial[0] = cstate;
    c->initial[1] = sstate;
    for (int d = 0; d < 2; d++) {
        Flow *f = &c->f[d];
        f->window = -1;
        f->rtx_seq = -1;
        f->fin_idx = -1;
        f->state = (d == client_dir) ? cstate : sstate;
    }
    if ((s->flags & F_SYN) && (s->flags & F_ACK)) {
        c->f[client_dir].syn_next = s->ack;
        c->f[client_dir].has_syn_next = 1;
    }
    c->first_rst_idx = -1;
    c->id = id;
    /* a slot */
    Py_ssize_t slot;
    Py_ssize_t nfree = PyList_GET_SIZE(a->free_slots);
    if (nfree) {
        slot = PyLong_AsSsize_t(PyList_GET_ITEM(a->free_slots, nfree - 1));
        if (PyList_SetSlice(a->free_slots, nfree - 1, nfree, NULL) < 0) { conn_free(c); return NULL; }
    } else {
        if (a->nslots == a->cap) {
            Py_ssize_t cap = a->cap ? a->cap * 2 : 1024;
            Conn **q = PyMem_Realloc(a->slots, cap * sizeof(Conn *));
            if (!q) { conn_free(c); PyErr_NoMemory(); return NULL; }
            a->slots = q;
            a->cap = cap;
        }
        slot = a->nslots++;
    }
    a->slots[slot] = c;
    PyObject *v0 = PyLong_FromSsize_t(slot << 1), *v1 = PyLong_FromSsize_t((slot << 1) | 1);
    int err = !v0 || !v1 || PyDict_SetItem(a->table, key, v0) < 0 || PyDict_SetItem(a->table, c->rkey, v1) < 0;
    Py_XDECREF(v0);
    Py_XDECREF(v1);
    if (err) return NULL; /* the slot holds it; dealloc frees it */
    *slot_out = slot;
    return c;
}

static PyObject *bytes_of(Vec *v) { return PyBytes_FromStringAndSize(v->p ? v->p : "", v->n); }

/* Hand a connection's summary to Python and forget it. */
static int conn_emit(Analyzer *a, Py_ssize_t slot) {
    Conn *c = a->slots[slot];
    if (!c) return 0;
    /* its keys leave the table only if they still point at it (a new connection may have taken them) */
    PyObject *keys[2] = {c->key, c->rkey};
    for (int k = 0; k < 2; k++) {
        PyObject *v = PyDict_GetItemWithError(a->table, keys[k]);
        if (v && (PyLong_AsSsize_t(v) >> 1) == slot) {
            if (PyDict_DelItem(a->table, keys[k]) < 0) return -1;
        } else if (PyErr_Occurred())
            return -1;
    }
    PyObject *flows = Py_BuildValue(
        "((kLLLLiiki)(kLLLLiiki))", (unsigned long)c->f[0].base, c->f[0].rtx, c->f[0].ka, c->f[0].zwp,
        c->f[0].fin_idx, c->f[0].state, c->f[0].has_fin_next, (unsigned long)c->f[0].fin_next, c->f[0].base_set,
        (unsigned long)c->f[1].base, c->f[1].rtx, c->f[1].ka, c->f[1].zwp, c->f[1].fin_idx, c->f[1].state,
        c->f[1].has_fin_next, (unsigned long)c->f[1].fin_next, c->f[1].base_set);
    if (!flows) return -1;
    PyObject *summary = Py_BuildValue("(LLLLLNNNNNNLiiL)", c->packets, (long long)c->last_ns, c->first_frame,
                                      c->first_off, c->last_off, flows, bytes_of(&c->fl), bytes_of(&c->marks),
                                      bytes_of(&c->changes), bytes_of(&c->gaps), bytes_of(&c->rsts),
                                      c->first_rst_idx, c->synack, c->crossed, (long long)c->first_rtt);
    if (!summary) return -1;
    PyObject *r = PyObject_CallFunctionObjArgs(a->finish, c->obj, summary, c->raw ? c->raw : Py_None, NULL);
    Py_DECREF(summary);
    a->slots[slot] = NULL;
    conn_free(c);
    if (!r) return -1;
    Py_DECREF(r);
    PyObject *s = PyLong_FromSsize_t(slot);
    if (!s || PyList_Append(a->free_slots, s) < 0) { Py_XDECREF(s); return -1; }
    Py_DECREF(s);
    return 0;
}

static int cmp_id(const void *x, const void *y) {
    long long a = *(const long long *)x, b = *(const long long *)y;
    return a < b ? -1 : a > b;
}

/* Emit, in order of connection id, the closed connections silent for longer than the linger. */
static int sweep(Analyzer *a, int all) {
    Py_ssize_t keep = 0;
    Py_ssize_t *out = NULL, nout = 0;
    if (a->ncands) {
        out = PyMem_Malloc(a->ncands * sizeof(Py_ssize_t));
        if (!out) { PyErr_NoMemory(); return -1; }
    }
    for (Py_ssize_t i = 0; i < a->ncands; i++) {
        Py_ssize_t slot = a->cands[i];
        Conn *c = a->slots[slot];
        if (all || a->now - c->last_ns > a->linger)
            out[nout++] = slot;
        else
            a->cands[keep++] = slot;
    }
    a->ncands = keep;
    /* ids: the Python objects know them; slots are reused, so order by id via the objects */
    if (nout > 1) {
        /* sort slot indexes by their connection's id */
        long long *ids = PyMem_Malloc(nout * 2 * sizeof(long long));
        if (!ids) { PyMem_Free(out); PyErr_NoMemory(); return -1; }
        for (Py_ssize_t i = 0; i < nout; i++) {
            ids[2 * i] = a->slots[out[i]]->id;
            ids[2 * i + 1] = out[i];
        }
        qsort(ids, nout, 2 * sizeof(long long), cmp_id);
        for (Py_ssize_t i = 0; i < nout; i++) out[i] = (Py_ssize_t)ids[2 * i + 1];
        PyMem_Free(ids);
    }
    for (Py_ssize_t i = 0; i < nout; i++) {
        if (conn_emit(a, out[i]) < 0) { PyMem_Free(out); return -1; }
    }
    PyMem_Free(out);
    return 0;
}

static int add_cand(Analyzer *a, Py_ssize_t slot) {
    if (a->ncands == a->capcands) {
        Py_ssize_t cap = a->capcands ? a->capcands * 2 : 256;
        Py_ssize_t *q = PyMem_Realloc(a->cands, cap * sizeof(Py_ssize_t));
        if (!q) { PyErr_NoMemory(); return -1; }
        a->cands = q;
        a->capcands = cap;
    }
    a->cands[a->ncands++] = slot;
    return 0;
}

/* Analyzer.feed for one segment. */
static int analyse(Analyzer *a, int64_t ts, const uint8_t *buf, const Seg *s, long long frame, long long foff,
                   long caplen, long link) {
    if (ts > a->now) a->now = ts;
    if (a->now >= a->next_sweep) {
        if (a->ncands && sweep(a, 0) < 0) return -1;
        a->next_sweep = a->now + a->sweep_every;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)s->key, s->keylen);
    if (!key) return -1;
    uint32_t seq = s->seq, ack = s->ack;
    int flags = s->flags, win = s->win;
    long seglen = s->seglen;
    PyObject *hit = PyDict_GetItemWithError(a->table, key);
    Conn *c;
    int d;
    Py_ssize_t slot;
    if (!hit) {
        if (PyErr_Occurred()) { Py_DECREF(key); return -1; }
        c = conn_new(a, ts, key, s, frame, foff, &slot);
        d = 0;
    } else {
        Py_ssize_t v = PyLong_AsSsize_t(hit);
        slot = v >> 1;
        d = (int)(v & 1);
        c = a->slots[slot];
        if ((flags & 0x12) == 0x02) {
            Flow *flow = &c->f[d];
            if (flow->base_set && seq != flow->base) {
                c = conn_new(a, ts, key, s, frame, foff, &slot);
                d = 0;
            }
        }
    }
    if (!c) { Py_DECREF(key); return -1; }
    if (c->raw) {
        PyObject *opts = a->options ? PyBytes_FromStringAndSize((const char *)buf + s->opt, s->optlen)
                                    : PyBytes_FromStringAndSize("", 0);
        PyObject *t = opts ? Py_BuildValue("(LNkkiilNLLll)", (long long)ts, key, (unsigned long)seq,
                                           (unsigned long)ack, flags, win, s->seglen, opts, frame, foff, caplen, link)
                           : NULL;
        if (!t) return -1;  /* key's reference went into the tuple (or was lost with it) */
        int err = PyList_Append(c->raw, t);
        Py_DECREF(t);
        if (err < 0) return -1;
    } else
        Py_DECREF(key);
    long long idx = c->packets;
    c->packets = idx + 1;
    c->last_ns = ts;
    c->last_off = foff;
    uint16_t fl = (uint16_t)(flags | (d << 9));
    if (vec_put(&c->fl, &fl, 2) < 0) return -1;
    Flow *fwd = &c->f[d], *rev = &c->f[d ^ 1];
    if (!c->based) {
        if (!fwd->base_set) {
            fwd->base = (flags & F_SYN) ? seq : (seq - 1) & M32;
            fwd->base_set = 1;
        }
        if (!rev->base_set && (flags & F_ACK)) {
            rev->base = (ack - 1) & M32;
            rev->base_set = 1;
        }
        c->based = rev->base_set && fwd->base_set;
    }

    int marks = 0;
    uint32_t nextseq = fwd->nextseq, end;
    int sfr = flags & SFR;
    if (seglen == 1 && seq == nextseq && rev->window == 0) {
        marks = MK_ZWP;
    } else {
        if (win == 0 && !sfr) marks = MK_ZW;
        if (nextseq && !(flags & F_RST)) {
            uint32_t dd = (seq - nextseq) & M32;
            if (0 < dd && dd < HALF) marks |= MK_LOST;
        }
        if (seglen <= 1 && !sfr) {
            /* Wireshark's keep-alive, if the peer has acknowledged seq (connection.py says why) */
            if (seq == ((nextseq - 1) & M32) && (!fwd->has_acked || ((fwd->acked - seq - 1) & M32) < HALF))
                marks |= MK_KA;
            if (!seglen && seq == nextseq && ack == fwd->lastack) {
                if (win && win != fwd->window) marks |= MK_WUPD;
                if (win && win == fwd->window && (rev->lastmarks & MK_KA))
                    marks |= MK_KA_ACK;
                else if (win == 0 && fwd->window == 0 && (rev->lastmarks & MK_ZWP))
                    marks |= MK_ZWP_ACK;
                else if (win && win == fwd->window) {
                    fwd->dupacks = fwd->dupacks == -1 ? 1 : fwd->dupacks + 1;
                    marks |= MK_DUP;
                }
            }
        }
    }
    if (ack != fwd->lastack) fwd->dupacks = 0;
    if ((flags & F_ACK) && (!rev->has_acked || (0 < ((ack - rev->acked) & M32) && ((ack - rev->acked) & M32) < HALF))) {
        rev->acked = ack;
        rev->has_acked = 1;
    }
    if ((flags & F_ACK) && rev->maxseqtobeacked) {
        uint32_t dd = (ack - rev->maxseqtobeacked) & M32;
        if (0 < dd && dd < HALF) {
            if (((rev->maxseqtobeacked - rev->nextseq) & M32) >= HALF) {
                rev->maxseqtobeacked = rev->nextseq;
                marks |= MK_UNSEEN;
            } else {
                if (rev->dupacks == 0) marks |= MK_UNSEEN;
                rev->dupacks = -1;
            }
        }
    }
    if (seglen || (flags & (F_SYN | F_FIN))) {
        end = (flags & (F_SYN | F_FIN)) ? (uint32_t)(seq + seglen + 1) & M32 : (uint32_t)(seq + seglen) & M32;
        if (!(marks & MK_KA)) {
            int not_advanced = nextseq && ((seq - nextseq) & M32) >= HALF;
            if (seglen > 1 && ((nextseq - 1) & M32) == seq) not_advanced = 0;
            int64_t thr = c->first_rtt ? c->first_rtt : OOO_NS;
            if (seglen && rev->lastack && ((uint32_t)(rev->lastack - seq - seglen) & M32) < HALF)
                marks |= MK_SPUR;
            else if (not_advanced && rev->dupacks >= 2 && rev->lastack == seq && 0 <= ts - rev->lastacktime &&
                     ts - rev->lastacktime < FAST_RTX_NS)
                marks |= MK_FAST;
            else if (not_advanced && 0 <= ts - fwd->nextseqtime && ts - fwd->nextseqtime < thr && nextseq != end)
                marks |= MK_OOO;
            else if (not_advanced)
                marks |= MK_RTX;
            if (marks & MK_ANY_RTX) {
                fwd->rtx += 1;
                GapRec g = {(uint32_t)idx, (uint8_t)d,
                            ts - ((int64_t)seq == fwd->rtx_seq ? fwd->rtx_time : fwd->nextseqtime)};
                if (vec_put(&c->gaps, &g, sizeof g) < 0) return -1;
                fwd->rtx_seq = seq;
                fwd->rtx_time = ts;
            }
        }
    } else
        end = seq;
    if (!(marks & MK_ZWP)) {
        uint32_t dd = (end - nextseq) & M32;
        if (!nextseq || (0 < dd && dd < HALF)) {
            fwd->nextseq = end;
            fwd->nextseqtime = ts;
        }
        if (!fwd->maxseqtobeacked || seq == fwd->maxseqtobeacked) fwd->maxseqtobeacked = fwd->nextseq;
    }
    fwd->window = win;
    fwd->lastack = ack;
    fwd->lastacktime = ts;
    fwd->lastmarks = marks;

    if (flags & F_SYN) {
        if (flags & F_ACK)
            c->synack = 1;
        else
            c->mru_syn = ts;
    } else if (!c->first_rtt && (flags & F_ACK) && c->mru_syn)
        c->first_rtt = ts - c->mru_syn;

    if (marks) {
        MarkRec r = {(uint32_t)idx, (uint16_t)marks};
        if (vec_put(&c->marks, &r, sizeof r) < 0) return -1;
        if (marks & MK_KA)
            fwd->ka += 1;
        else if (marks & MK_ZWP)
            fwd->zwp += 1;
    }
    if (sfr || !c->settled) {
        int crossed = 0, ns;
        if (sfr) {
            if (flags & F_RST) {
                if (c->rsts.n == 0) c->first_rst_idx = idx;
                uint8_t db = (uint8_t)d;
                if (vec_put(&c->rsts, &db, 1) < 0) return -1;
            }
            if ((flags & F_FIN) && fwd->fin_idx < 0) {
                fwd->fin_idx = idx;
                if (rev->fin_idx >= 0) {
                    crossed = c->crossed =
                        !((flags & F_ACK) && rev->has_fin_next && ((ack - rev->fin_next) & M32) < HALF);
                }
            }
        }
        if (crossed && fwd->state == S_CLOSE_WAIT) {
            undo_change(c, d, S_CLOSE_WAIT);
            fwd->state = S_ESTABLISHED;
            fin_state_send(fwd, flags, seq, seglen);
            if (add_change(c, idx, d, S_FIN_WAIT_1) < 0) return -1;
            fwd->state = S_CLOSING;
            if (add_change(c, idx, d, S_CLOSING) < 0) return -1;
            ns = -1;
        } else
            ns = sfr ? fin_state_send(fwd, flags, seq, seglen) : -1;
        if (ns >= 0 && add_change(c, idx, d, ns) < 0) return -1;
        ns = on_receive(rev, flags, ack);
        if (ns >= 0 && add_change(c, idx, d ^ 1, ns) < 0) return -1;
        c->settled = fwd->state == S_ESTABLISHED && rev->state == S_ESTABLISHED;
        if (!c->candidate && (c->rsts.n || (is_closed(fwd->state) && is_closed(rev->state)))) {
            c->candidate = 1;
            if (add_cand(a, slot) < 0) return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- the type */

static int Analyzer_init(Analyzer *a, PyObject *args, PyObject *kw) {
    static char *names[] = {"factory", "finish", "linger_ns", "sweep_ns", "options", NULL};
    PyObject *factory, *finish;
    long long linger, sweep_every;
    int options = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOLL|p", names, &factory, &finish, &linger, &sweep_every, &options))
        return -1;
    Py_INCREF(factory);
    Py_INCREF(finish);
    Py_XSETREF(a->factory, factory);
    Py_XSETREF(a->finish, finish);
    if (!a->table && !(a->table = PyDict_New())) return -1;
    if (!a->free_slots && !(a->free_slots = PyList_New(0))) return -1;
    a->linger = linger;
    a->sweep_every = sweep_every;
    a->next_sweep = INT64_MIN;
    a->now = INT64_MIN;
    a->options = options;
    return 0;
}

static void Analyzer_dealloc(Analyzer *a) {
    for (Py_ssize_t i = 0; i < a->nslots; i++)
        if (a->slots[i]) conn_free(a->slots[i]);
    PyMem_Free(a->slots);
    PyMem_Free(a->cands);
    Py_XDECREF(a->table);
    Py_XDECREF(a->factory);
    Py_XDECREF(a->finish);
    Py_XDECREF(a->free_slots);
    Py_TYPE(a)->tp_free((PyObject *)a);
}

/* feed_pcap(buf, pos, little, scale, link, base) -> pos: every whole record of a classic pcap chunk */
static PyObject *Analyzer_feed_pcap(Analyzer *a, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    int little;
    long long scale, base;
    long link;
    if (!PyArg_ParseTuple(args, "y*nplLL", &view, &pos, &little, &scale, &link, &base)) return NULL;
    const uint8_t *buf = view.buf;
    Py_ssize_t n = view.len;
    Seg s;
    while (n - pos >= 16) {
        const uint8_t *h = buf + pos;
        uint32_t sec = little ? u32le(h) : u32(h), frac = little ? u32le(h + 4) : u32(h + 4);
        uint32_t caplen = little ? u32le(h + 8) : u32(h + 8), wire = little ? u32le(h + 12) : u32(h + 12);
        Py_ssize_t start = pos + 16;
        if ((Py_ssize_t)caplen > n - start) break; /* Python reads on (or says the record is corrupt) */
        long long frame = ++a->st[ST_FRAMES];
        int64_t ts = (int64_t)sec * 1000000000LL + (int64_t)frac * scale;
        if (decode(buf, n, start, (long)caplen, (long)wire, link, a->st, &s)) {
            if (analyse(a, ts, buf, &s, frame, base + start, (long)caplen, link) < 0) {
                PyBuffer_Release(&view);
                return NULL;
            }
        }
        pos = start + caplen;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos);
}

/* feed_pcapng(buf, pos, little, ifaces, base) -> pos: every whole enhanced packet block from pos on, until
 * any other block, anything odd (Python judges it) or the end of the chunk. ifaces: formats.py's list of
 * (link, snaplen, mul, div, offset_ns). */
#define MAX_IFACES 64
static PyObject *Analyzer_feed_pcapng(Analyzer *a, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    int little;
    PyObject *ifaces;
    long long base;
    if (!PyArg_ParseTuple(args, "y*npO!L", &view, &pos, &little, &PyList_Type, &ifaces, &base)) return NULL;
    long long ilink[MAX_IFACES], imul[MAX_IFACES], idiv[MAX_IFACES], ioff[MAX_IFACES];
    Py_ssize_t nif = PyList_GET_SIZE(ifaces);
    if (nif > MAX_IFACES) nif = 0; /* Python does it all */
    for (Py_ssize_t i = 0; i < nif; i++) {
        long long snap;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(ifaces, i), "LLLLL", &ilink[i], &snap, &imul[i], &idiv[i], &ioff[i])) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyBuffer_Release(&view);
                return NULL;
            }
            PyErr_Clear(); /* units or offsets beyond 64 bits: Python does it all */
            nif = 0;
            break;
        }
        if (idiv[i] <= 0 || imul[i] <= 0) {
            nif = 0;
            break;
        }
    }
    const uint8_t *buf = view.buf;
    Py_ssize_t n = view.len;
    Seg s;
#define RD32(p) (little ? u32le(p) : u32(p))
    while (nif && n - pos >= 12) {
        const uint8_t *b = buf + pos;
        uint32_t btype = RD32(b), blen = RD32(b + 4);
        if (btype != 6 || blen < 32 || blen % 4 || blen > MAX_RECORD || (Py_ssize_t)blen > n - pos) break;
        if (RD32(b + blen - 4) != blen) break;
        uint32_t ifid = RD32(b + 8), high = RD32(b + 12), low = RD32(b + 16), caplen = RD32(b + 20),
                 wire = RD32(b + 24);
        Py_ssize_t start = pos + 28, body_end = pos + blen - 4;
        if ((Py_ssize_t)caplen > body_end - start || ifid >= (uint32_t)nif) break;
        __int128 ts = (__int128)(((uint64_t)high << 32) | low) * imul[ifid];
        /* Python's floor division, then the offset */
        __int128 q = ts / idiv[ifid];
        if ((ts % idiv[ifid]) != 0 && ((ts < 0) != (idiv[ifid] < 0))) q -= 1;
        q += (__int128)ioff[ifid];
        if (q > INT64_MAX || q < -INT64_MAX) break;
        long long frame = ++a->st[ST_FRAMES];
        if (decode(buf, n, start, (long)caplen, (long)wire, (long)ilink[ifid], a->st, &s)) {
            if (analyse(a, (int64_t)q, buf, &s, frame, base + start, (long)caplen, (long)ilink[ifid]) < 0) {
                PyBuffer_Release(&view);
                return NULL;
            }
        }
        pos += blen;
    }
#undef RD32
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos);
}

/* feed_frame(ts, link, buf, start, caplen, wire, foff): one record (pcapng) */
static PyObject *Analyzer_feed_frame(Analyzer *a, PyObject *args) {
    long long ts, foff;
    long link, caplen, wire;
    Py_buffer view;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "Lly*nllL", &ts, &link, &view, &start, &caplen, &wire, &foff)) return NULL;
    Seg s;
    long long frame = ++a->st[ST_FRAMES];
    int r = 0;
    if (start >= 0 && start + caplen <= view.len && decode(view.buf, view.len, start, caplen, wire, link, a->st, &s))
        r = analyse(a, ts, view.buf, &s, frame, foff, caplen, link);
    PyBuffer_Release(&view);
    if (r < 0) return NULL;
    Py_RETURN_NONE;
}

/* finish(): every connection still held, in order of id */
static PyObject *Analyzer_close(Analyzer *a, PyObject *unused) {
    a->ncands = 0;
    for (Py_ssize_t i = 0; i < a->nslots; i++) {
        if (a->slots[i] && add_cand(a, i) < 0) return NULL;
    }
    if (sweep(a, 1) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Analyzer_stats(Analyzer *a, PyObject *unused) {
    return Py_BuildValue("(LLLLLLLL)", a->st[0], a->st[1], a->st[2], a->st[3], a->st[4], a->st[5], a->st[6],
                         a->st[7]);
}

/* pick_pcap(buf, pos, little, scale, link, base, frame, keys, first_off, last_off, out) -> (pos, frame, done):
 * the segments of one connection, read again: every whole record of a classic pcap chunk is decoded, and
 * the TCP segments whose key is one of keys and whose record lies between first_off and last_off are
 * appended to out as reader tuples (pcap.py's TcpTuple). done: a record past last_off was met. */
static PyObject *pick_pcap(PyObject *mod, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    int little;
    long long scale, base, frame, first_off, last_off;
    long link;
    PyObject *keys, *out;
    if (!PyArg_ParseTuple(args, "y*npLlLLO!LLO!", &view, &pos, &little, &scale, &link, &base, &frame, &PyTuple_Type,
                          &keys, &first_off, &last_off, &PyList_Type, &out))
        return NULL;
    const uint8_t *buf = view.buf;
    Py_ssize_t n = view.len;
    long long st[ST_N] = {0};
    int done = 0;
    Seg s;
    while (n - pos >= 16) {
        const uint8_t *h = buf + pos;
        uint32_t sec = little ? u32le(h) : u32(h), frac = little ? u32le(h + 4) : u32(h + 4);
        uint32_t caplen = little ? u32le(h + 8) : u32(h + 8), wire = little ? u32le(h + 12) : u32(h + 12);
        Py_ssize_t start = pos + 16;
        if ((Py_ssize_t)caplen > n - start) break;
        long long foff = base + start;
        if (foff > last_off) {
            done = 1;
            break;
        }
        frame++;
        if (foff >= first_off && decode(buf, n, start, (long)caplen, (long)wire, link, st, &s)) {
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(keys); k++) {
                PyObject *key = PyTuple_GET_ITEM(keys, k);
                if (PyBytes_Check(key) && PyBytes_GET_SIZE(key) == s.keylen &&
                    memcmp(PyBytes_AS_STRING(key), s.key, s.keylen) == 0) {
                    int64_t ts = (int64_t)sec * 1000000000LL + (int64_t)frac * scale;
                    PyObject *t = Py_BuildValue("(LOkkiilNLLll)", (long long)ts, key, (unsigned long)s.seq,
                                                (unsigned long)s.ack, s.flags, s.win, s.seglen,
                                                PyBytes_FromStringAndSize((const char *)buf + s.opt, s.optlen),
                                                frame, foff, (long)caplen, link);
                    if (!t || PyList_Append(out, t) < 0) {
                        Py_XDECREF(t);
                        PyBuffer_Release(&view);
                        return NULL;
                    }
                    Py_DECREF(t);
                    break;
                }
            }
        }
        pos = start + caplen;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nLi)", pos, frame, done);
}


/* ---------------------------------------------------------------- ladder lines */

/* A mirror of ladder.py's segment_label() and _line() (and segments.py's parse_options(), Options.describe(),
 * mark_words() and tcpdump_flags()), drawing the lines of `netbed ladder` from the reader's tuples. The Python
 * code is the reference; tests/unit/test_tcp_ladder.py compares both line by line. Change both together. */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Text;

static int text_room(Text *t, Py_ssize_t more) {
    if (t->n + more <= t->cap) return 0;
    Py_ssize_t cap = t->cap ? t->cap * 2 : 4096;
    while (cap < t->n + more) cap *= 2;
    char *q = PyMem_Realloc(t->p, cap);
    if (!q) { PyErr_NoMemory(); return -1; }
    t->p = q;
    t->cap = cap;
    return 0;
}

static inline void text_put(Text *t, const char *s, Py_ssize_t n) { memcpy(t->p + t->n, s, n); t->n += n; }
static inline void text_fill(Text *t, char c, Py_ssize_t n) { memset(t->p + t->n, c, n); t->n += n; }

/* the flags as tcpdump writes them: segments.py's _TCPDUMP */
static Py_ssize_t tcpdump_letters(int flags, char *out) {
    static const int bit[9] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x100};
    static const char letter[9] = {'F', 'S', 'R', 'P', '.', 'U', 'E', 'W', 'N'};
    Py_ssize_t n = 0;
    for (int i = 0; i < 9; i++)
        if (flags & bit[i]) out[n++] = letter[i];
    if (!n) { memcpy(out, "none", 4); n = 4; }
    return n;
}

/* segments.py's _MARK_WORDS, in its order */
static const struct { int bit; const char *word; } MARK_WORDS[] = {
    {MK_RTX, "retransmission"}, {MK_FAST, "fast retransmission"}, {MK_SPUR, "spurious retransmission"},
    {MK_OOO, "out-of-order"}, {MK_KA, "keep-alive"}, {MK_KA_ACK, "keep-alive ACK"},
    {MK_ZWP, "zero-window probe"}, {MK_ZWP_ACK, "zero-window probe ACK"}, {MK_ZW, "zero window"},
    {MK_DUP, "dup ACK"}, {MK_WUPD, "window update"}, {MK_LOST, "previous segment not captured"},
    {MK_UNSEEN, "ACKed unseen segment"}};

#define LABEL_MAX 2048 /* the longest label: 40 option bytes, every mark (well under) */

/* segment_label(seg, options) into out (LABEL_MAX bytes); returns its length */
static Py_ssize_t ladder_label(char *out, int flags, uint32_t rseq, uint32_t rack, int win, long long plen,
                               const uint8_t *opt, Py_ssize_t optlen, uint32_t sack_base, int marks, int options) {
    Py_ssize_t n = tcpdump_letters(flags, out);
    if (plen)
        n += snprintf(out + n, 64, " seq %lu:%lld", (unsigned long)rseq, (long long)rseq + plen);
    else
        n += snprintf(out + n, 64, " seq %lu", (unsigned long)rseq);
    if (flags & F_ACK) n += snprintf(out + n, 64, " ack %lu", (unsigned long)rack);
    n += snprintf(out + n, 64, " win %d", win);
    if (plen) n += snprintf(out + n, 64, " len %lld", plen);
    if (options && optlen) {
        /* parse_options: stops quietly at anything malformed; the last of each kind wins, SACK blocks add up */
        long mss = -1, wscale = -1;
        int sack_ok = 0, has_ts = 0, nsack = 0;
        uint32_t ts_val = 0, ts_ecr = 0;
        uint32_t sack[2 * 20];
        Py_ssize_t i = 0;
        while (i < optlen) {
            int kind = opt[i];
            if (kind == 0) break;
            if (kind == 1) { i++; continue; }
            if (i + 1 >= optlen) break;
            int length = opt[i + 1];
            if (length < 2 || i + length > optlen) break;
            const uint8_t *body = opt + i + 2;
            if (kind == 2 && length == 4) mss = u16(body);
            else if (kind == 3 && length == 3) wscale = body[0];
            else if (kind == 4 && length == 2) sack_ok = 1;
            else if (kind == 5 && (length - 2) % 8 == 0) {
                for (int j = 0; j + 8 <= length - 2 && nsack < 20; j += 8) {
                    sack[2 * nsack] = u32(body + j);
                    sack[2 * nsack + 1] = u32(body + j + 4);
                    nsack++;
                }
            } else if (kind == 8 && length == 10) {
                has_ts = 1;
                ts_val = u32(body);
                ts_ecr = u32(body + 4);
            }
            i += length;
        }
        if (flags & F_SYN || nsack) {
            Py_ssize_t start = n + 2, m = start; /* " <" then the parts joined by "," */
            if (mss >= 0) m += snprintf(out + m, 32, "%smss %ld", m > start ? "," : "", mss);
            if (sack_ok) m += snprintf(out + m, 32, "%ssackOK", m > start ? "," : "");
            if (has_ts)
                m += snprintf(out + m, 48, "%sTS val %lu ecr %lu", m > start ? "," : "", (unsigned long)ts_val,
                              (unsigned long)ts_ecr);
            if (wscale >= 0) m += snprintf(out + m, 32, "%swscale %ld", m > start ? "," : "", wscale);
            if (nsack) {
                m += snprintf(out + m, 32, "%ssack", m > start ? "," : "");
                for (int k = 0; k < nsack; k++)
                    m += snprintf(out + m, 32, " %lu:%lu", (unsigned long)((sack[2 * k] - sack_base) & M32),
                                  (unsigned long)((sack[2 * k + 1] - sack_base) & M32));
            }
            if (m > start) {
                out[n] = ' ';
                out[n + 1] = '<';
                out[m++] = '>';
                n = m;
            }
        }
    }
    if (marks) {
        int first = 1;
        for (size_t k = 0; k < sizeof MARK_WORDS / sizeof MARK_WORDS[0]; k++) {
            if (!(marks & MARK_WORDS[k].bit)) continue;
            n += snprintf(out + n, 64, "%s%s", first ? " [" : ", ", MARK_WORDS[k].word);
            first = 0;
        }
        if (!first) out[n++] = ']';
    }
    return n;
}

typedef struct {
    long long idx;
    const char *left, *right;
    Py_ssize_t nleft, nright;
} LadderChange;

/* ladder_draw(segments, start, fl, client_dir, base0, base1, first_ns, marks, changes, options, width):
 * segments: the reader's tuples of one connection, the first at index start; fl: Connection._fl; marks: packed
 * (index, marks) records in order of index (connection._MARK_REC); changes: [(index, left, right)] in order,
 * the state text of each side where a segment changes it. width < 0: the widest label + 6 (the arrows' width);
 * else the lines, joined by newlines. */
static PyObject *ladder_draw(PyObject *mod, PyObject *args) {
    PyObject *segs, *changes, *first_obj;
    Py_ssize_t start;
    Py_buffer flv, mkv;
    int client_dir, options;
    unsigned long base[2];
    long long width;
    if (!PyArg_ParseTuple(args, "O!ny*ikkOy*O!pL", &PyList_Type, &segs, &start, &flv, &client_dir, &base[0],
                          &base[1], &first_obj, &mkv, &PyList_Type, &changes, &options, &width))
        return NULL;
    int ovf = 0;
    long long first_ns = PyLong_AsLongLongAndOverflow(first_obj, &ovf);
    if (first_ns == -1 && PyErr_Occurred()) {
        PyBuffer_Release(&flv);
        PyBuffer_Release(&mkv);
        return NULL;
    }
    int big_first = ovf != 0; /* times beyond 64 bits (fuzzed captures): Python's arithmetic, as the reference */
    PyObject *result = NULL;
    Text t = {0};
    LadderChange *chg = NULL;
    const uint16_t *fl = flv.buf;
    Py_ssize_t nfl = flv.len / 2;
    const uint8_t *mk = mkv.buf;
    Py_ssize_t nmk = mkv.len / 8;
    Py_ssize_t nchg = PyList_GET_SIZE(changes);
    if (nchg && !(chg = PyMem_Calloc(nchg, sizeof *chg))) { PyErr_NoMemory(); goto out; }
    for (Py_ssize_t k = 0; k < nchg; k++) {
        PyObject *c = PyList_GET_ITEM(changes, k), *l, *r;
        if (!PyArg_ParseTuple(c, "LUU", &chg[k].idx, &l, &r)) goto out;
        if (!PyUnicode_IS_ASCII(l) || !PyUnicode_IS_ASCII(r)) {
            PyErr_SetString(PyExc_ValueError, "ladder_draw: state names must be ASCII");
            goto out;
        }
        chg[k].left = PyUnicode_AsUTF8AndSize(l, &chg[k].nleft);
        chg[k].right = PyUnicode_AsUTF8AndSize(r, &chg[k].nright);
        if (!chg[k].left || !chg[k].right) goto out;
    }
    /* the first mark and change at or after start */
    Py_ssize_t mi = 0, ci = 0, lo, hi;
    for (lo = 0, hi = nmk; lo < hi;) {
        Py_ssize_t mid = (lo + hi) / 2;
        uint32_t idx;
        memcpy(&idx, mk + 8 * mid, 4);
        if ((Py_ssize_t)idx < start) lo = mid + 1; else hi = mid;
    }
    mi = lo;
    while (ci < nchg && chg[ci].idx < start) ci++;
    long long widest = 0;
    char label[LABEL_MAX];
    Py_ssize_t nsegs = PyList_GET_SIZE(segs);
    for (Py_ssize_t k = 0; k < nsegs; k++) {
        Py_ssize_t i = start + k;
        PyObject *tup = PyList_GET_ITEM(segs, k);
        if (!PyTuple_Check(tup) || PyTuple_GET_SIZE(tup) < 9) {
            PyErr_SetString(PyExc_TypeError, "ladder_draw: segments are the reader's tuples");
            goto out;
        }
        if (i >= nfl) {
            PyErr_SetString(PyExc_IndexError, "array index out of range");
            goto out;
        }
        int d = fl[i] >> 9;
        int tovf = 0;
        long long ts = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(tup, 0), &tovf);
        unsigned long seq = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(tup, 2));
        unsigned long ack = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(tup, 3));
        long flags = PyLong_AsLong(PyTuple_GET_ITEM(tup, 4));
        long win = PyLong_AsLong(PyTuple_GET_ITEM(tup, 5));
        long long plen = PyLong_AsLongLong(PyTuple_GET_ITEM(tup, 6));
        long long frame = PyLong_AsLongLong(PyTuple_GET_ITEM(tup, 8));
        if (PyErr_Occurred()) goto out;
        PyObject *opt = PyTuple_GET_ITEM(tup, 7);
        char *optp = "";
        Py_ssize_t optlen = 0;
        if (PyBytes_Check(opt)) {
            optp = PyBytes_AS_STRING(opt);
            optlen = PyBytes_GET_SIZE(opt);
        }
        int marks = 0;
        while (mi < nmk) {
            uint32_t idx;
            uint16_t m;
            memcpy(&idx, mk + 8 * mi, 4);
            if ((Py_ssize_t)idx > i) break;
            memcpy(&m, mk + 8 * mi + 4, 2);
            if ((Py_ssize_t)idx == i) marks = m;
            mi++;
        }
        uint32_t rseq = ((uint32_t)seq - (uint32_t)base[d]) & M32;
        uint32_t rack = flags & F_ACK ? ((uint32_t)ack - (uint32_t)base[d ^ 1]) & M32 : 0;
        uint32_t sack_base = flags & F_ACK ? (uint32_t)base[d ^ 1] : 0;
        Py_ssize_t nl = ladder_label(label, (int)flags, rseq, rack, (int)win, plen, (const uint8_t *)optp, optlen,
                                     sack_base, marks, options);
        if (width < 0) {
            if (nl + 6 > widest) widest = nl + 6;
            continue;
        }
        /* f"{frame:>6} {time:>11.6f}  {left:<13} {arrow}  {right}".rstrip() */
        const char *left = "", *right = "";
        Py_ssize_t nleft = 0, nright = 0;
        while (ci < nchg && chg[ci].idx < i) ci++;
        if (ci < nchg && chg[ci].idx == i) {
            left = chg[ci].left;
            nleft = chg[ci].nleft;
            right = chg[ci].right;
            nright = chg[ci].nright;
        }
        char when[64];
        double since;
        int sub_ovf = (first_ns > 0 && ts < LLONG_MIN + first_ns) || (first_ns < 0 && ts > LLONG_MAX + first_ns);
        if (!tovf && !big_first && !sub_ovf) {
            since = (double)(ts - first_ns) / 1e9;
        } else { /* (ts - first_ns) / 1e9 as Python computes it */
            PyObject *diff = PyNumber_Subtract(PyTuple_GET_ITEM(tup, 0), first_obj);
            if (!diff) goto out;
            since = PyLong_AsDouble(diff);
            Py_DECREF(diff);
            if (since == -1.0 && PyErr_Occurred()) goto out;
            since /= 1e9;
        }
        char *num = PyOS_double_to_string(since, 'f', 6, 0, NULL);
        if (!num) goto out;
        int nw = snprintf(when, sizeof when, "%6lld %11s  ", frame, num);
        PyMem_Free(num);
        if (nw < 0 || nw >= (int)sizeof when) {
            PyErr_SetString(PyExc_OverflowError, "ladder_draw: time too large");
            goto out;
        }
        Py_ssize_t dashes = width - (nl + 2) - 3;
        if (dashes < 1) dashes = 1;
        if (text_room(&t, nw + (nleft > 13 ? nleft : 13) + 1 + nl + 6 + dashes + 2 + nright + 1) < 0) goto out;
        if (t.n) text_put(&t, "\n", 1);
        text_put(&t, when, nw);
        text_put(&t, left, nleft);
        if (nleft < 13) text_fill(&t, ' ', 13 - nleft);
        if (d == client_dir) {
            text_put(&t, " -- ", 4);
            text_put(&t, label, nl);
            text_put(&t, " ", 1);
            text_fill(&t, '-', dashes);
            text_put(&t, ">", 1);
        } else {
            text_put(&t, " <-- ", 5);
            text_put(&t, label, nl);
            text_put(&t, " ", 1);
            text_fill(&t, '-', dashes);
        }
        if (nright) {
            text_put(&t, "  ", 2);
            text_put(&t, right, nright);
        }
    }
    if (width < 0)
        result = PyLong_FromLongLong(widest);
    else
        result = PyUnicode_DecodeASCII(t.p ? t.p : "", t.n, NULL);
out:
    PyMem_Free(t.p);
    PyMem_Free(chg);
    PyBuffer_Release(&flv);
    PyBuffer_Release(&mkv);
    return result;
}

static PyMethodDef module_methods[] = {
    {"ladder_draw", ladder_draw, METH_VARARGS, "A connection's ladder lines (or their width) from the reader's tuples."},
    {"pick_pcap", pick_pcap, METH_VARARGS, "One connection's segments from a classic pcap chunk (reading again)."},
    {NULL}};

static PyMethodDef Analyzer_methods[] = {
    {"feed_pcap", (PyCFunction)Analyzer_feed_pcap, METH_VARARGS, "Analyse the whole records of a pcap chunk."},
    {"feed_pcapng", (PyCFunction)Analyzer_feed_pcapng, METH_VARARGS,
     "Analyse the whole packet blocks of a pcapng chunk."},
    {"feed_frame", (PyCFunction)Analyzer_feed_frame, METH_VARARGS, "Analyse one record."},
    {"close", (PyCFunction)Analyzer_close, METH_NOARGS, "Hand over every connection still open."},
    {"stats", (PyCFunction)Analyzer_stats, METH_NOARGS, "The reader's counters, as ReadStats orders them."},
    {NULL}};

static PyTypeObject AnalyzerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netbed.tcp._speedups.Analyzer",
    .tp_basicsize = sizeof(Analyzer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Analyzer_init,
    .tp_dealloc = (destructor)Analyzer_dealloc,
    .tp_methods = Analyzer_methods,
    .tp_doc = "Decode and analyse captured frames; see netbed/tcp/_speedups.c.",
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "netbed.tcp._speedups",
                                    "The reader's decoder and the analysis in C (optional).", -1, module_methods};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&AnalyzerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&AnalyzerType);
    if (PyModule_AddObject(m, "Analyzer", (PyObject *)&AnalyzerType) < 0) return NULL;
    return m;
}
