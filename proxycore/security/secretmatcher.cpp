#include "secretmatcher.h"

#include <QSet>

#include <algorithm>
#include <cstring>

namespace keyrelay {

namespace {

int hexValue(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/// The value of four hex digits at @p p, or -1.
int hex4(const char *p)
{
    int value = 0;
    for (int i = 0; i < 4; ++i) {
        const int digit = hexValue(p[i]);
        if (digit < 0)
            return -1;
        value = value * 16 + digit;
    }
    return value;
}

void appendUtf8(char32_t codePoint, QByteArray *out)
{
    if (codePoint < 0x80) {
        out->append(char(codePoint));
    } else if (codePoint < 0x800) {
        out->append(char(0xC0 | (codePoint >> 6)));
        out->append(char(0x80 | (codePoint & 0x3F)));
    } else if (codePoint < 0x10000) {
        out->append(char(0xE0 | (codePoint >> 12)));
        out->append(char(0x80 | ((codePoint >> 6) & 0x3F)));
        out->append(char(0x80 | (codePoint & 0x3F)));
    } else {
        out->append(char(0xF0 | (codePoint >> 18)));
        out->append(char(0x80 | ((codePoint >> 12) & 0x3F)));
        out->append(char(0x80 | ((codePoint >> 6) & 0x3F)));
        out->append(char(0x80 | (codePoint & 0x3F)));
    }
}

bool mayBeEncoded(const QByteArray &text)
{
    return text.contains('\\') || text.contains('%');
}

/// One escape (JSON string escape or percent-encoding) or one plain byte at @p i: what it decodes to, and
/// how many bytes it takes.
qsizetype decodeUnit(const QByteArray &in, qsizetype i, QByteArray *decoded)
{
    const qsizetype n = in.size();
    const char *p = in.constData();
    const char c = p[i];
    if (c == '\\' && i + 1 < n) {
        switch (p[i + 1]) {
        case '/':
        case '\\':
        case '"':
            decoded->append(p[i + 1]);
            return 2;
        case 'b':
            decoded->append('\b');
            return 2;
        case 'f':
            decoded->append('\f');
            return 2;
        case 'n':
            decoded->append('\n');
            return 2;
        case 'r':
            decoded->append('\r');
            return 2;
        case 't':
            decoded->append('\t');
            return 2;
        case 'u': {
            const int high = i + 5 < n ? hex4(p + i + 2) : -1;
            if (high < 0)
                break;
            if (high >= 0xD800 && high <= 0xDBFF && i + 11 < n && p[i + 6] == '\\' && p[i + 7] == 'u') {
                const int low = hex4(p + i + 8);
                if (low >= 0xDC00 && low <= 0xDFFF) {
                    appendUtf8(0x10000 + ((char32_t(high) - 0xD800) << 10) + (char32_t(low) - 0xDC00),
                               decoded);
                    return 12;
                }
            }
            // A lone surrogate decodes to U+FFFD, as JSON parsers replace it.
            appendUtf8(high >= 0xD800 && high <= 0xDFFF ? 0xFFFD : char32_t(high), decoded);
            return 6;
        }
        default:
            break;
        }
    } else if (c == '%' && i + 2 < n) {
        const int highNibble = hexValue(p[i + 1]);
        const int lowNibble = hexValue(p[i + 2]);
        if (highNibble >= 0 && lowNibble >= 0) {
            decoded->append(char(highNibble * 16 + lowNibble));
            return 3;
        }
    }
    decoded->append(c);
    return 1;
}

/// @p in with one layer undone; each byte of the result knows the range of the original text it came
/// from. @p inBegins / @p inEnds map @p in's own bytes to the original (null: @p in is the original).
/// Returns false when nothing was decoded.
bool decodeLayer(const QByteArray &in, const std::vector<qsizetype> *inBegins,
                 const std::vector<qsizetype> *inEnds, QByteArray *out, std::vector<qsizetype> *begins,
                 std::vector<qsizetype> *ends)
{
    out->clear();
    begins->clear();
    ends->clear();
    out->reserve(in.size());
    begins->reserve(size_t(in.size()));
    ends->reserve(size_t(in.size()));
    bool changed = false;
    QByteArray unit;
    for (qsizetype i = 0; i < in.size();) {
        unit.clear();
        const qsizetype width = decodeUnit(in, i, &unit);
        changed = changed || width > 1;
        const qsizetype begin = inBegins ? (*inBegins)[size_t(i)] : i;
        const qsizetype end = inEnds ? (*inEnds)[size_t(i + width - 1)] : i + width;
        for (const char byte : std::as_const(unit)) {
            out->append(byte);
            begins->push_back(begin);
            ends->push_back(end);
        }
        i += width;
    }
    return changed;
}

std::uint64_t prefixKey(const char *p)
{
    std::uint64_t key = 0;
    for (qsizetype i = 0; i < SecretMatcher::MinSecretLength; ++i)
        key = (key << 8) | static_cast<unsigned char>(p[i]);
    return key;
}

unsigned pairOf(const char *p)
{
    return (unsigned(static_cast<unsigned char>(p[0])) << 8) | static_cast<unsigned char>(p[1]);
}

} // namespace

SecretMatcher::SecretMatcher(const QList<Secret> &secrets) : m_firstPairs(65536 / 64, 0)
{
    QSet<QByteArray> seen;
    seen.reserve(secrets.size());
    for (const Secret &secret : secrets) {
        if (secret.bytes.size() < MinSecretLength || seen.contains(secret.bytes))
            continue;
        seen.insert(secret.bytes);
        m_secrets.push_back(secret);
    }
    std::stable_sort(m_secrets.begin(), m_secrets.end(),
                     [](const Secret &a, const Secret &b) { return a.bytes.size() > b.bytes.size(); });
    for (size_t i = 0; i < m_secrets.size(); ++i) {
        const char *p = m_secrets[i].bytes.constData();
        m_byPrefix[prefixKey(p)].push_back(int(i));
        const unsigned pair = pairOf(p);
        m_firstPairs[pair / 64] |= std::uint64_t(1) << (pair % 64);
    }
}

void SecretMatcher::scan(const QByteArray &bytes, const std::vector<qsizetype> *begins,
                         const std::vector<qsizetype> *ends, QList<Match> *out) const
{
    const qsizetype n = bytes.size();
    const char *p = bytes.constData();
    for (qsizetype i = 0; i + MinSecretLength <= n; ++i) {
        const unsigned pair = pairOf(p + i);
        if (!(m_firstPairs[pair / 64] & (std::uint64_t(1) << (pair % 64))))
            continue;
        const auto candidates = m_byPrefix.find(prefixKey(p + i));
        if (candidates == m_byPrefix.end())
            continue;
        for (const int index : candidates->second) {
            const QByteArray &secret = m_secrets[size_t(index)].bytes;
            if (i + secret.size() > n || std::memcmp(p + i, secret.constData(), size_t(secret.size())) != 0)
                continue;
            const qsizetype last = i + secret.size() - 1;
            out->append(
                { begins ? (*begins)[size_t(i)] : i, ends ? (*ends)[size_t(last)] : last + 1, index });
            break; // the longest secret here
        }
    }
}

QList<SecretMatcher::Match> SecretMatcher::find(const QByteArray &text) const
{
    QList<Match> found;
    if (m_secrets.empty() || text.size() < MinSecretLength)
        return found;
    scan(text, nullptr, nullptr, &found);
    if (mayBeEncoded(text)) {
        QByteArray layer;
        std::vector<qsizetype> begins;
        std::vector<qsizetype> ends;
        bool changed = decodeLayer(text, nullptr, nullptr, &layer, &begins, &ends);
        for (int depth = 1; changed && depth <= MaxDecodeLayers; ++depth) {
            scan(layer, &begins, &ends, &found);
            if (depth == MaxDecodeLayers || !mayBeEncoded(layer))
                break;
            QByteArray next;
            std::vector<qsizetype> nextBegins;
            std::vector<qsizetype> nextEnds;
            changed = decodeLayer(layer, &begins, &ends, &next, &nextBegins, &nextEnds);
            layer = std::move(next);
            begins = std::move(nextBegins);
            ends = std::move(nextEnds);
        }
    }
    if (found.size() < 2)
        return found;
    std::sort(found.begin(), found.end(), [](const Match &a, const Match &b) {
        return a.begin < b.begin || (a.begin == b.begin && a.end > b.end);
    });
    QList<Match> merged;
    for (const Match &match : std::as_const(found)) {
        if (!merged.isEmpty() && match.begin < merged.last().end)
            merged.last().end = qMax(merged.last().end, match.end);
        else
            merged.append(match);
    }
    return merged;
}

QByteArray SecretMatcher::mask(const QByteArray &text) const
{
    const QList<Match> matches = find(text);
    if (matches.isEmpty())
        return text;
    QByteArray out;
    out.reserve(text.size());
    qsizetype last = 0;
    for (const Match &match : matches) {
        out.append(text.constData() + last, match.begin - last);
        out.append(m_secrets[size_t(match.secret)].mask);
        last = match.end;
    }
    out.append(text.constData() + last, text.size() - last);
    return out;
}

QByteArray SecretMatcher::decodeOnce(const QByteArray &text)
{
    QByteArray out;
    std::vector<qsizetype> begins;
    std::vector<qsizetype> ends;
    decodeLayer(text, nullptr, nullptr, &out, &begins, &ends);
    return out;
}

} // namespace keyrelay
