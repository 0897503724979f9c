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

/// The "error" of an error body, {"error":{"message","type","code"}} or {"error":"text"}; fields that are
/// absent (or a body that is not such JSON) give empty strings.
OpenAiError parseOpenAiError(const QByteArray &body);

} // namespace keyrelay
