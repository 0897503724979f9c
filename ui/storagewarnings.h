// Tells the user where the keys and the proxy password really are when the system keychain refuses them,
// and warns, until it is over, while the keys are in memory only.
#pragma once

#include <QObject>
#include <QString>

namespace keyrelay {

class KeysPage;
class NoticeBanner;
class StorageEvents;

/// Binds a store's StorageEvents to the window: the Keys page footer always says where the keys are; a
/// fallback to the files is said once (a dismissible notice in the banner, and announce() for the tray);
/// keys that could not be saved anywhere keep a notice in the banner (no Dismiss button) until a save
/// succeeds.
class StorageWarnings : public QObject
{
    Q_OBJECT
public:
    /// Nothing is owned; all must outlive this object.
    StorageWarnings(StorageEvents *events, NoticeBanner *banner, KeysPage *keysPage,
                    QObject *parent = nullptr);

    /// The footer for where the keys are at start (KeysPage::storageNoticeFor()).
    void setStartNotice(const QString &notice);

    static QString keysUnsavedId() { return QStringLiteral("keys-unsaved"); }
    /// The dismissible notices that the keys / the proxy password went to a file instead of the keychain.
    static QString keysFallbackId() { return QStringLiteral("keys-fallback"); }
    static QString secretsFallbackId() { return QStringLiteral("secrets-fallback"); }

Q_SIGNALS:
    /// Something said once (it is also a dismissible notice in the banner): for a notification.
    void announce(const QString &title, const QString &text);

private:
    void onFellBack(int what, const QString &keychainError, const QString &file);
    void onKeysNotSaved(const QString &error);
    void onKeysSaved();

    NoticeBanner *m_banner;
    KeysPage *m_keysPage;
    QString m_notice; ///< where the keys are, when they are saved
};

} // namespace keyrelay
