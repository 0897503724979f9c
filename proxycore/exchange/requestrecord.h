// One finished (or failed) proxied request, as shown in the log.
#pragma once

#include <QDateTime>
#include <QMetaType>
#include <QString>

namespace keyrelay {

struct RequestRecord
{
    quint64 id = 0;
    QDateTime startedAt;
    QString method;
    QString path; ///< path and query as the client sent it
    QString model; ///< "model" of a JSON request body, if any
    QString keyLabel; ///< label or masked form of the key used; never the key itself
    int status = 0; ///< HTTP status sent to the client; 0 if the client left before a status was sent
    qint64 latencyMs = -1; ///< time to the first response byte (status line) in milliseconds
    qint64 durationMs = 0; ///< time until the response was complete
    qint64 requestBytes = 0;
    qint64 responseBytes = 0; ///< body bytes sent to the client
    bool streamed = false; ///< response was Server-Sent Events
    bool rewritten = false; ///< the message rewrite changed the body
    int attempts = 1; ///< upstream attempts (more than one when a failing key was skipped)
    qint64 promptTokens = -1; ///< from the response's "usage", -1 when unknown
    qint64 completionTokens = -1;
    qint64 totalTokens = -1;
    QString error; ///< empty on success
    QString origin; ///< the browser Origin header, if any
    bool originBlocked = false; ///< refused because the website is not allowed (see security/allowedOrigins)
    QString keyId; ///< KeyPool::keyId() of the key used; empty in pass-through mode
    QString provider; ///< the provider id that served (or was tried for) the request; "" for KeyRelay's own answers
    bool fellBack = false; ///< this try failed before the first byte and the next provider was tried

    /// A single line for the headless log: time, method, path, model, key, status, latency, bytes, tokens.
    QString toLogLine() const;
};

} // namespace keyrelay

Q_DECLARE_METATYPE(keyrelay::RequestRecord)
