// libFuzzer target: a fuzzer-chosen key, spelled in fuzzer-chosen ways (JSON string escapes,
// percent-encoding, both nested), inside fuzzer-chosen text, masked by SecretMatcher as the proxy masks
// upstream error bodies, header values and log lines.
//
// Input: byte 0 picks the key's length (9..64) and byte 1 where the key goes in the text; then one byte per
// key character chooses the character ("sk-" + letters, digits, '-', '_', '/', '+'), one byte per character
// chooses its spelling; the rest is the text around it. Invariants:
//  - no reading of the output gives the key back: not the bytes, not the text percent-decoded (RFC 3986) once
//  or twice,
//    and, when the output is JSON, none of its strings (names and values, at any depth) as a JSON parser
//    reads them, nor those strings percent-decoded once or twice;
//  - text that was valid JSON stays valid JSON;
//  - text without the key in any spelling comes out byte for byte.
#include "secretmatcher.h"

#include "percentdecoding.h"

#include <QByteArray>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

using keyrelay::SecretMatcher;

namespace {

[[noreturn]] void violated(const char *what, int line, const QByteArray &key, const QByteArray &text)
{
    std::fprintf(stderr, "fuzz_secret_masking: invariant violated (line %d): %s\nkey: %s\noutput: %s\n", line,
                 what, key.constData(), text.left(2000).constData());
    std::abort();
}

#define FUZZ_CHECK(condition, key, text)                                                                     \
    do {                                                                                                     \
        if (!(condition))                                                                                    \
            violated(#condition, __LINE__, key, text);                                                       \
    } while (false)

const char KeyAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+";

QByteArray hex2(unsigned char c, bool upper)
{
    const QByteArray hex = QByteArray::number(uint(c), 16).rightJustified(2, '0');
    return upper ? hex.toUpper() : hex;
}

/// One character of the key as an encoder might write it.
QByteArray spell(char c, std::uint8_t choice)
{
    const auto byte = static_cast<unsigned char>(c);
    switch (choice % 9) {
    case 1:
        return "\\u00" + hex2(byte, false);
    case 2:
        return "\\u00" + hex2(byte, true);
    case 3:
        return '%' + hex2(byte, true);
    case 4:
        return '%' + hex2(byte, false);
    case 5:
        return c == '/' ? QByteArray("\\/") : QByteArray(1, c);
    case 6:
        return "%25" + hex2(byte, true); // percent-encoded twice
    case 7:
        return "\\u0025" + hex2(byte, true); // percent-encoded, then the '%' JSON-escaped
    case 8:
        return "%5Cu00" + hex2(byte, false); // JSON-escaped, then the '\' percent-encoded
    default:
        return QByteArray(1, c);
    }
}

using fuzzsupport::percentDecoded;

/// What a reader can get back from @p text.
void readings(const QByteArray &text, QList<QByteArray> *out)
{
    out->append(text);
    const QByteArray once = percentDecoded(text);
    out->append(once);
    out->append(percentDecoded(once));
}

void jsonStrings(const QJsonValue &value, QList<QByteArray> *out)
{
    if (value.isString()) {
        readings(value.toString().toUtf8(), out);
    } else if (value.isArray()) {
        const QJsonArray array = value.toArray();
        for (const QJsonValue &item : array)
            jsonStrings(item, out);
    } else if (value.isObject()) {
        const QJsonObject object = value.toObject();
        for (auto it = object.begin(); it != object.end(); ++it) {
            readings(it.key().toUtf8(), out);
            jsonStrings(it.value(), out);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const size_t length = 9 + data[0] % 56;
    if (size < 2 + 2 * (length - 3))
        return 0;
    const std::uint8_t *characters = data + 2;
    const std::uint8_t *spellings = characters + (length - 3);
    const std::uint8_t *rest = spellings + (length - 3);
    const QByteArray around(reinterpret_cast<const char *>(rest), qsizetype(size - size_t(rest - data)));

    QByteArray key("sk-");
    for (size_t i = 0; i < length - 3; ++i)
        key += KeyAlphabet[characters[i] % (sizeof(KeyAlphabet) - 1)];
    QByteArray spelled;
    for (qsizetype i = 0; i < key.size(); ++i)
        spelled += spell(key.at(i), i < 3 ? 0 : spellings[i - 3]);
    const qsizetype cut = around.isEmpty() ? 0 : qsizetype(data[1]) * around.size() / 256;
    const QByteArray text = around.left(cut) + spelled + around.mid(cut);

    const SecretMatcher matcher({ { key, "sk-\xE2\x80\xA6" + key.right(4) } });
    const QByteArray masked = matcher.mask(text);

    QList<QByteArray> seen;
    readings(masked, &seen);
    QJsonParseError error {};
    const QJsonDocument document = QJsonDocument::fromJson(masked, &error);
    if (error.error == QJsonParseError::NoError)
        jsonStrings(document.isArray() ? QJsonValue(document.array()) : QJsonValue(document.object()), &seen);
    for (const QByteArray &reading : std::as_const(seen))
        FUZZ_CHECK(!reading.contains(key), key, masked);

    QJsonParseError before {};
    QJsonDocument::fromJson(text, &before);
    if (before.error == QJsonParseError::NoError)
        FUZZ_CHECK(error.error == QJsonParseError::NoError, key, masked);

    // The text around the key alone: untouched unless it spells the key itself.
    const QByteArray plain = matcher.mask(around);
    FUZZ_CHECK(plain == around || matcher.contains(around), key, plain);
    return 0;
}
