// Where the user's API keys live between runs: never inside the settings file.
#pragma once

#include "keypool.h"

#include <QList>
#include <QString>

namespace keyrelay {

/// Loads and saves the key list. Implementations never log the keys themselves.
class KeyStore
{
public:
    virtual ~KeyStore() = default;

    /// Reads the keys. A missing store is not an error (empty list). A damaged one yields an empty
    /// list, false and a user-facing @p error; it never throws or crashes.
    virtual bool load(QList<ApiKey> *keys, QString *error) = 0;
    /// Replaces the stored keys. Returns false with a user-facing @p error when they could not be written.
    virtual bool save(const QList<ApiKey> &keys, QString *error) = 0;
    /// Where the keys are kept, for the UI ("file ~/.config/KeyRelay/keys.json").
    virtual QString location() const = 0;
};

/// The key list as JSON: {"version": 1, "keys": [{"secret", "label", "enabled"}, ...]}. The format of
/// keys.json, and of the key list kept in the system keychain.
QByteArray keysToJson(const QList<ApiKey> &keys);

/// Parses keysToJson()'s format. Returns false with a @p problem (never containing a key) for text that
/// is not such a list; entries without a usable secret are skipped and counted in @p skipped.
bool keysFromJson(const QByteArray &json, QList<ApiKey> *keys, int *skipped, QString *problem);

/// The same keys, labels and enabled flags in the same order.
bool sameKeyLists(const QList<ApiKey> &a, const QList<ApiKey> &b);

/// A JSON file readable by its owner only (0600), written atomically with QSaveFile.
class FileKeyStore : public KeyStore
{
public:
    explicit FileKeyStore(const QString &path);

    /// "keys.json" next to @p settingsFile (the QSettings file, which never holds a key).
    static QString pathNextTo(const QString &settingsFile);

    bool load(QList<ApiKey> *keys, QString *error) override;
    bool save(const QList<ApiKey> &keys, QString *error) override;
    QString location() const override { return m_path; }

private:
    QString m_path;
};

/// A provider's keysFile: one key per line, as --keys-file reads it (KeyPool::parseKeyList). Read-only: the
/// file belongs to whoever wrote it (a script, a deployment); save() says so.
class KeyListFileStore : public KeyStore
{
public:
    explicit KeyListFileStore(const QString &path) : m_path(path) { }

    bool load(QList<ApiKey> *keys, QString *error) override;
    bool save(const QList<ApiKey> &keys, QString *error) override;
    QString location() const override { return m_path; }

private:
    QString m_path;
};

} // namespace keyrelay
