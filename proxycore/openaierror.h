// Error bodies in the shape OpenAI clients parse: {"error":{"message","type","code"}}.
#pragma once

#include <QByteArray>
#include <QString>

namespace keyrelay {

QByteArray openAiErrorBody(const QString &message, const QString &type, const QString &code);

} // namespace keyrelay
