// The head of an upstream response as libcurl hands it over, one line per call: the status line of every
// interim 1xx answer and of the final one, header lines (obsolete folding joined), the empty line that
// ends each head, and after the body a chunked response's trailer lines. Bounded in total bytes.
#pragma once

#include "httprequestparser.h"

#include <QByteArray>

namespace keyrelay {

class ResponseHeadReader
{
public:
    enum class Progress {
        Reading, ///< more lines to come (or an interim answer was skipped)
        Complete, ///< the final answer's head just ended: status() and headers() are it
        TooLarge, ///< the lines passed the byte budget; nothing more is read
    };

    explicit ResponseHeadReader(qint64 maxBytes) : m_maxBytes(maxBytes) { }

    /// One line as curl gives it (with its CRLF or LF). Lines after the final head (trailers) are ignored.
    Progress feedLine(const char *data, size_t length);

    /// The final answer's status (1xx interim answers are skipped), 0 before its status line.
    int status() const { return m_status; }
    /// "1.1", "2"...
    QByteArray version() const { return m_version; }
    /// The final answer's headers, in order, names as sent (valid once Complete).
    const HeaderList &headers() const { return m_headers; }
    bool isComplete() const { return m_complete; }
    bool isTooLarge() const { return m_tooLarge; }

private:
    qint64 m_maxBytes;
    qint64 m_bytes = 0;
    int m_status = 0;
    QByteArray m_version;
    HeaderList m_headers;
    bool m_complete = false;
    bool m_tooLarge = false;
};

} // namespace keyrelay
