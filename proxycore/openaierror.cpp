#include "openaierror.h"

#include <QJsonDocument>
#include <QJsonObject>

namespace keyrelay {

QByteArray openAiErrorBody(const QString &message, const QString &type, const QString &code)
{
    QJsonObject error;
    error.insert(QLatin1String("message"), message);
    error.insert(QLatin1String("type"), type);
    error.insert(QLatin1String("code"), code.isEmpty() ? QJsonValue() : QJsonValue(code));
    error.insert(QLatin1String("param"), QJsonValue());
    QJsonObject root;
    root.insert(QLatin1String("error"), error);
    return QJsonDocument(root).toJson(QJsonDocument::Compact);
}

} // namespace keyrelay
