#include "storagewarnings.h"

#include "keyspage.h"
#include "noticebanner.h"
#include "verifiedstores.h"

namespace keyrelay {

StorageWarnings::StorageWarnings(StorageEvents *events, NoticeBanner *banner, KeysPage *keysPage,
                                 QObject *parent)
    : QObject(parent), m_banner(banner), m_keysPage(keysPage), m_notice(keysPage->storageNotice())
{
    connect(events, &StorageEvents::fellBack, this,
            [this](StorageEvents::What what, const QString &keychainError, const QString &file) {
                onFellBack(int(what), keychainError, file);
            });
    connect(events, &StorageEvents::keysNotSaved, this, &StorageWarnings::onKeysNotSaved);
    connect(events, &StorageEvents::keysSaved, this, &StorageWarnings::onKeysSaved);
}

void StorageWarnings::setStartNotice(const QString &notice)
{
    m_notice = notice;
    if (!m_banner->hasNotice(keysUnsavedId()))
        m_keysPage->setStorageNotice(notice);
}

void StorageWarnings::onFellBack(int what, const QString &keychainError, const QString &file)
{
    if (StorageEvents::What(what) == StorageEvents::What::Keys) {
        m_notice = tr("The system keychain could not store the keys (%1), so they are stored in %2 instead, "
                      "readable only by you.")
                       .arg(keychainError, file);
        m_keysPage->setStorageNotice(m_notice);
        const QString title = tr("KeyRelay: keys saved in a file");
        const QString text
            = tr("The system keychain could not store your keys, so KeyRelay saved them in %1 "
                 "(readable only by you). They are kept after a restart. The keychain said: %2")
                  .arg(file, keychainError);
        m_banner->setNotice(keysFallbackId(), text, {}, true);
        Q_EMIT announce(title, text);
    } else {
        const QString title = tr("KeyRelay: proxy password saved in a file");
        const QString text
            = tr("The system keychain could not store the upstream proxy password, so KeyRelay "
                 "saved it in %1 (readable only by you). The keychain said: %2")
                  .arg(file, keychainError);
        m_banner->setNotice(secretsFallbackId(), text, {}, true);
        Q_EMIT announce(title, text);
    }
}

void StorageWarnings::onKeysNotSaved(const QString &error)
{
    m_banner->setNotice(keysUnsavedId(),
                        tr("Your keys are not saved: they are in memory only and will be lost when KeyRelay "
                           "quits."),
                        { error, tr("KeyRelay tries again at every change of the key list.") }, false);
    m_keysPage->setStorageNotice(
        tr("The keys are in memory only and will be lost when KeyRelay quits (%1).").arg(error));
}

void StorageWarnings::onKeysSaved()
{
    m_banner->removeNotice(keysUnsavedId());
    m_keysPage->setStorageNotice(m_notice);
}

} // namespace keyrelay
