// Small named secrets that must not sit in the settings file (the upstream proxy's password).
#pragma once

#include <QMap>
#include <QString>

namespace keyrelay {

/// Named secrets. Implementations never log the values.
class SecretStore
{
public:
    virtual ~SecretStore() = default;

    /// Reads the secret @p name into @p value ("" when there is none). Returns false with a user-facing
    /// @p error when the store could not be read.
    virtual bool read(const QString &name, QString *value, QString *error) = 0;
    /// Stores @p value under @p name; an empty @p value removes the secret.
    virtual bool write(const QString &name, const QString &value, QString *error) = 0;
    /// Where the secrets are kept, for the UI.
    virtual QString location() const = 0;
};

/// A JSON file readable by its owner only (0600): {"version": 1, "secrets": {"name": "value"}}. Written
/// atomically; removed when its last secret is. A damaged file is kept as "<file>.damaged" by the next write.
class FileSecretStore : public SecretStore
{
public:
    explicit FileSecretStore(const QString &path);

    /// "secrets.json" next to @p settingsFile.
    static QString pathNextTo(const QString &settingsFile);

    /// Every secret in the file (empty map when there is no file).
    bool readAll(QMap<QString, QString> *secrets, QString *error) const;

    bool read(const QString &name, QString *value, QString *error) override;
    bool write(const QString &name, const QString &value, QString *error) override;
    QString location() const override { return m_path; }

private:
    bool writeAll(const QMap<QString, QString> &secrets, QString *error) const;

    QString m_path;
};

} // namespace keyrelay
