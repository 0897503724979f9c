// The fuzz oracles' percent-decoding, as RFC 3986 and browsers do it: "%XX" with two hex digits is a byte,
// any other '%' stays as it is. (QByteArray::fromPercentEncoding is not used: it also turns "%4H" into 'H'.)
#pragma once

#include <QByteArray>

namespace fuzzsupport {

inline int hexValue(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/// @p text with every valid %XX decoded once.
inline QByteArray percentDecoded(const QByteArray &text)
{
    QByteArray out;
    out.reserve(text.size());
    for (qsizetype i = 0; i < text.size(); ++i) {
        if (text.at(i) == '%' && i + 2 < text.size() && hexValue(text.at(i + 1)) >= 0
            && hexValue(text.at(i + 2)) >= 0) {
            out.append(char(hexValue(text.at(i + 1)) * 16 + hexValue(text.at(i + 2))));
            i += 2;
        } else {
            out.append(text.at(i));
        }
    }
    return out;
}

} // namespace fuzzsupport
