#include "responsehead.h"

#include <cstring>

namespace keyrelay {

namespace {

bool isToken(const QByteArray &name)
{
    if (name.isEmpty())
        return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
        if (!ok)
            return false;
    }
    return true;
}

} // namespace

ResponseHeadReader::Progress ResponseHeadReader::feedLine(const char *data, size_t length)
{
    if (m_tooLarge)
        return Progress::TooLarge;
    m_bytes += qint64(length);
    if (m_bytes > m_maxBytes) {
        m_tooLarge = true;
        return Progress::TooLarge;
    }
    if (m_complete)
        return Progress::Reading; // a trailer: the head went to the client already
    QByteArray line(data, qsizetype(length));
    while (line.endsWith('\n') || line.endsWith('\r'))
        line.chop(1);
    // A bare CR (or NUL) inside a line would split a header for some clients once passed on: such a line
    // is dropped, as is a header whose name is not an HTTP token.
    if (line.contains('\r') || line.contains('\0'))
        return Progress::Reading;
    if (line.startsWith("HTTP/")) {
        // A new answer: the first, or the final one after an interim 1xx (103 Early Hints...).
        const qsizetype space = line.indexOf(' ');
        m_version = line.mid(5, space < 0 ? -1 : space - 5);
        bool ok = false;
        const int status = space < 0 ? 0 : line.mid(space + 1, 3).toInt(&ok);
        m_status = ok && status >= 100 && status <= 999 ? status : 0;
        m_headers.clear();
        return Progress::Reading;
    }
    if (line.isEmpty()) {
        if (m_status >= 200) {
            m_complete = true;
            return Progress::Complete;
        }
        m_headers.clear(); // the end of an interim answer's head
        return Progress::Reading;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && !m_headers.isEmpty()) {
        const QByteArray more = line.trimmed(); // obsolete line folding
        if (!more.isEmpty()) {
            QByteArray &value = m_headers.last().second;
            value = value.isEmpty() ? more : value + ' ' + more;
        }
        return Progress::Reading;
    }
    const qsizetype colon = line.indexOf(':');
    const QByteArray name = colon > 0 ? line.left(colon).trimmed() : QByteArray();
    if (isToken(name))
        m_headers.append({ name, line.mid(colon + 1).trimmed() });
    return Progress::Reading;
}

} // namespace keyrelay
