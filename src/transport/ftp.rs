//! FTP and FTPS (explicit or implicit TLS) through suppaftp with rustls.

use super::{Entry, Folder, TransportError};
use crate::config::FtpEndpoint;
use std::io::{Read, Write};

pub struct FtpFolder {
    describe: String,
}

impl FtpFolder {
    pub fn connect(ep: &FtpEndpoint) -> Result<FtpFolder, TransportError> {
        let _ = ep;
        Err(TransportError::permanent("ftp: not written yet"))
    }
}

impl Folder for FtpFolder {
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn list(&mut self) -> Result<Vec<Entry>, TransportError> {
        todo!()
    }
    fn get(&mut self, _name: &str, _to: &mut dyn Write) -> Result<u64, TransportError> {
        todo!()
    }
    fn put(&mut self, _name: &str, _from: &mut dyn Read) -> Result<u64, TransportError> {
        todo!()
    }
    fn size(&mut self, _name: &str) -> Result<u64, TransportError> {
        todo!()
    }
    fn rename(&mut self, _from: &str, _to: &str) -> Result<(), TransportError> {
        todo!()
    }
    fn remove(&mut self, _name: &str) -> Result<(), TransportError> {
        todo!()
    }
    fn mkdir(&mut self, _dir: &str) -> Result<(), TransportError> {
        todo!()
    }
}
