// One save at a time, the latest value wins: a keychain call spins the event loop, so a save can be asked for
// while another runs; that value is kept, and only the newest one is written once the running save returns.
#pragma once

#include <optional>
#include <utility>

namespace keyrelay {

template<typename T> class LatestSave
{
public:
    /// Writes @p value with @p write (bool write(const T &)), then the newest value queued meanwhile, until
    /// none is. Returns the last write's result; nullopt when a save was already running (the value is then
    /// queued for it).
    template<typename Write> std::optional<bool> run(const T &value, Write write)
    {
        if (m_running) {
            m_pending = value;
            m_hasPending = true;
            return std::nullopt;
        }
        m_running = true;
        T current = value;
        bool ok = true;
        for (;;) {
            ok = write(current);
            if (!m_hasPending)
                break;
            current = std::exchange(m_pending, T());
            m_hasPending = false;
        }
        m_running = false;
        return ok;
    }

private:
    bool m_running = false;
    bool m_hasPending = false;
    T m_pending;
};

} // namespace keyrelay
