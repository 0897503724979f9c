// Error bodies in the shape OpenAI clients parse: {"error":{"message","type","code"}}.
#pragma once

#include <QByteArray>
#include <QString>

namespace keyrelay {

QByteArray openAiErrorBody(const QString &message, const QString &type, const QString &code);

struct OpenAiError
{
    QString message;
    QString type;
    QString code;
};

/// The "error" of an error body, {"error":{"message","type","code"}} or {"error":"text"}, also when the
/// body is an event stream ("data: {"error":…}"); fields that are absent (or a body that is not such JSON)
/// give empty strings.
OpenAiError parseOpenAiError(const QByteArray &body);

/// For the log: the "error.message" of an upstream error body, or "upstream answered 503 Service
/// Unavailable" when it has none (at most 500 characters).
QString upstreamErrorMessage(const QByteArray &body, int status);

} // namespace keyrelay
